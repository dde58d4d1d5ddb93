package spec

import (
	"net"
	"strconv"
)

// ProxyTraffic configures graylane's built-in proxy (traffic.type proxy),
// which works with every backend whose instances report an address
// (process, ssh, webhook, docker...).
//
//	traffic:
//	  type: proxy
//	  proxy: {listen: 127.0.0.1:8081}
type ProxyTraffic struct {
	// Listen is the address (host:port) the app's proxy listens on.
	Listen string `json:"listen,omitempty"`
}

func (p *ProxyTraffic) validate(path string, e *errs) {
	if p.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(p.Listen)
	switch {
	case err != nil:
		e.add(join(path, "listen"), "%q is not host:port", p.Listen)
	case host != "" && net.ParseIP(host) == nil && !addrHostPattern.MatchString(host):
		e.add(join(path, "listen"), "%q is not an IP address or host name", host)
	default:
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			e.add(join(path, "listen"), "%q has no valid port", p.Listen)
		}
	}
}

// ProxyListen returns the address of the app's built-in proxy:
// traffic.proxy.listen, else (the older spelling, process backend only)
// backend.process.proxy; "" when neither is set.
func (r *Release) ProxyListen() string {
	if r.Traffic != nil && r.Traffic.Proxy != nil && r.Traffic.Proxy.Listen != "" {
		return r.Traffic.Proxy.Listen
	}
	if r.Backend.Process != nil {
		return r.Backend.Process.Proxy
	}
	return ""
}

// TrafficType returns traffic.type ("" when the section is absent).
func (r *Release) TrafficType() string {
	if r.Traffic == nil {
		return ""
	}
	return r.Traffic.Type
}

// validateProxy checks the proxy settings that span sections: the two
// spellings of the listen address must agree, and traffic.type proxy on a
// backend other than process needs traffic.proxy.listen.
func (r *Release) validateProxy(e *errs) {
	t := r.Traffic
	if t == nil {
		return
	}
	if t.Proxy != nil {
		t.Proxy.validate("traffic.proxy", e)
		if t.Type != "proxy" && !(t.Type == "" && r.Backend.Type == BackendProcess) {
			e.add("traffic.proxy", "is set but traffic.type is %q, not proxy", t.Type)
		}
	}
	if t.Proxy != nil && t.Proxy.Listen != "" && r.Backend.Process != nil && r.Backend.Process.Proxy != "" && t.Proxy.Listen != r.Backend.Process.Proxy {
		e.add("traffic.proxy.listen", "%q disagrees with backend.process.proxy %q: set one of them", t.Proxy.Listen, r.Backend.Process.Proxy)
	}
	if t.Type == "proxy" && r.Backend.Type != BackendProcess && r.ProxyListen() == "" {
		e.add("traffic.proxy.listen", "is required with traffic.type proxy on backend %s (the address the proxy listens on)", r.Backend.Type)
	}
}
