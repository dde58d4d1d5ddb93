package spec

import (
	"net"
	"regexp"
	"strconv"
	"time"
)

// Defaults of the nginx traffic router.
const (
	DefaultNginxMaxFails       = 1
	DefaultNginxFailTimeout    = 2 * time.Second
	DefaultNginxConnectTimeout = 2 * time.Second
)

var nginxServerName = regexp.MustCompile(`^(_|[A-Za-z0-9*]([A-Za-z0-9.*-]{0,251}[A-Za-z0-9])?)$`)

// NginxTraffic configures the nginx traffic router (traffic.type nginx).
//
// graylane renders the app's upstreams, its split and its header/cookie
// routes into one include file it owns. Without Listen, the operator's own
// server block routes with `proxy_pass http://$graylane_<app>;` (the app name
// with '-' replaced by '_'); with Listen, graylane also renders that server.
type NginxTraffic struct {
	// Listen, if set, is the address (host:port) of a server block graylane
	// renders for the app, proxying every request to the split.
	Listen string `json:"listen,omitempty"`
	// ServerName is that server block's server_name (default "_").
	ServerName string `json:"serverName,omitempty"`
	// MaxFails is each upstream server's max_fails: failed attempts within
	// FailTimeout that take it out of rotation for FailTimeout (default 1;
	// 0 disables passive health checks).
	MaxFails *int `json:"maxFails,omitempty"`
	// FailTimeout is each upstream server's fail_timeout (default 2s).
	FailTimeout *Duration `json:"failTimeout,omitempty"`
	// ConnectTimeout is proxy_connect_timeout: how long nginx waits for an
	// instance to accept before trying the next one (default 2s).
	ConnectTimeout *Duration `json:"connectTimeout,omitempty"`
}

// EffectiveMaxFails returns MaxFails with its default.
func (n *NginxTraffic) EffectiveMaxFails() int {
	if n == nil || n.MaxFails == nil {
		return DefaultNginxMaxFails
	}
	return *n.MaxFails
}

// EffectiveFailTimeout returns FailTimeout with its default.
func (n *NginxTraffic) EffectiveFailTimeout() time.Duration {
	if n == nil || n.FailTimeout == nil {
		return DefaultNginxFailTimeout
	}
	return n.FailTimeout.Duration
}

// EffectiveConnectTimeout returns ConnectTimeout with its default.
func (n *NginxTraffic) EffectiveConnectTimeout() time.Duration {
	if n == nil || n.ConnectTimeout == nil {
		return DefaultNginxConnectTimeout
	}
	return n.ConnectTimeout.Duration
}

func (n *NginxTraffic) validate(path string, e *errs) {
	if n.Listen != "" {
		host, port, err := net.SplitHostPort(n.Listen)
		if err != nil {
			e.add(join(path, "listen"), "%q is not host:port", n.Listen)
		} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			e.add(join(path, "listen"), "%q has no valid port", n.Listen)
		} else if host != "" && net.ParseIP(host) == nil && !addrHostPattern.MatchString(host) {
			e.add(join(path, "listen"), "%q is not an IP address or host name", host)
		}
	}
	if n.ServerName != "" && !nginxServerName.MatchString(n.ServerName) {
		e.add(join(path, "serverName"), "%q is not a server name (letters, digits, '.', '-', '*' or \"_\")", n.ServerName)
	}
	if n.MaxFails != nil && (*n.MaxFails < 0 || *n.MaxFails > 100) {
		e.add(join(path, "maxFails"), "%d is outside 0..100", *n.MaxFails)
	}
	for _, d := range []struct {
		name string
		v    *Duration
	}{{"failTimeout", n.FailTimeout}, {"connectTimeout", n.ConnectTimeout}} {
		if d.v == nil {
			continue
		}
		if d.v.Duration < time.Millisecond {
			e.add(join(path, d.name), "must be at least 1ms")
		} else if d.v.Duration%time.Millisecond != 0 {
			e.add(join(path, d.name), "%v is finer than nginx's 1ms resolution", d.v.Duration)
		}
	}
}

// addrHostPattern is a DNS name: labels of letters, digits and '-'.
var addrHostPattern = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
