package spec

import (
	"fmt"
	"net"
	"regexp"
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
	if t.Trust != nil {
		t.Trust.validate("traffic.trust", e)
	}
	if t.Proxy != nil && t.Proxy.Listen != "" && r.Backend.Process != nil && r.Backend.Process.Proxy != "" && t.Proxy.Listen != r.Backend.Process.Proxy {
		e.add("traffic.proxy.listen", "%q disagrees with backend.process.proxy %q: set one of them", t.Proxy.Listen, r.Backend.Process.Proxy)
	}
	if t.Type == "proxy" && r.Backend.Type != BackendProcess && r.ProxyListen() == "" {
		e.add("traffic.proxy.listen", "is required with traffic.type proxy on backend %s (the address the proxy listens on)", r.Backend.Type)
	}
}

// TrafficTrust names the callers allowed to steer versions at the edge
// (the built-in proxy and nginx): to reach the preview version with
// X-Graylane-Version and to send Nepxion's n-d-version, n-d-version-weight,
// n-d-region and n-d-address headers on. Every other request has these
// headers removed. Nobody is trusted by default.
//
//	traffic:
//	  trust:
//	    clientIPs: [10.8.0.0/16]        # e.g. the testers' VPN
//	    header: X-Graylane-Key          # or a secret header ...
//	    secretEnv: GRAYLANE_PREVIEW_KEY # ... whose value graylane reads from its environment
type TrafficTrust struct {
	// ClientIPs are addresses or CIDR prefixes of trusted connections (the
	// connection's own address, never a forwarded-for header).
	ClientIPs []string `json:"clientIPs,omitempty"`
	// Header names a request header whose value, the secret in graylane's
	// environment variable SecretEnv, marks a trusted request.
	Header    string `json:"header,omitempty"`
	SecretEnv string `json:"secretEnv,omitempty"`
}

// Secret returns the trust secret from graylane's environment (getenv is
// os.Getenv), "" when no header is configured, and an error when the
// variable is empty.
func (t *TrafficTrust) Secret(getenv func(string) string) (string, error) {
	if t == nil || t.Header == "" {
		return "", nil
	}
	v := getenv(t.SecretEnv)
	if v == "" {
		return "", fmt.Errorf("traffic.trust.secretEnv: %s is empty in graylane's environment: %w", t.SecretEnv, ErrInvalid)
	}
	return v, nil
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

func (t *TrafficTrust) validate(path string, e *errs) {
	for i, c := range t.ClientIPs {
		if _, err := ParseClientIP(c); err != nil {
			e.add(index(join(path, "clientIPs"), i), "%v", err)
		}
	}
	if t.Header != "" && !headerTokenPattern.MatchString(t.Header) {
		e.add(join(path, "header"), "%q is not a header name", t.Header)
	}
	if t.SecretEnv != "" && !envNamePattern.MatchString(t.SecretEnv) {
		e.add(join(path, "secretEnv"), "%q is not an environment variable name", t.SecretEnv)
	}
	if (t.Header == "") != (t.SecretEnv == "") {
		e.add(path, "set header and secretEnv together (the secret lives in graylane's environment, never in the spec)")
	}
}
