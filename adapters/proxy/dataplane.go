package proxy

import (
	"context"
	"errors"
	"os"
	"slices"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// ErrUnknownApp is returned (wrapped) by a DataPlane asked about an app it
// has no proxy for.
var ErrUnknownApp = errors.New("no proxy for this app")

// Settings are one app's proxy options, taken from its release.
type Settings struct {
	// Listen is the address the app's proxy listens on ("" = it does not
	// listen; its split and endpoints are still kept).
	Listen string `json:"listen,omitempty"`
	// StickyHeader and StickyCookie name where the user key is read
	// ("" = DefaultStickyHeader, DefaultStickyCookie).
	StickyHeader string `json:"stickyHeader,omitempty"`
	StickyCookie string `json:"stickyCookie,omitempty"`
	// Salt seeds the user bucketing (gray.salt; "" = spec.DefaultGraySalt).
	Salt string `json:"salt,omitempty"`
	// Trust says which callers may reach the preview and pin versions.
	Trust Trust `json:"trust,omitzero"`
}

// Trust names the callers whose X-Graylane-Version and Nepxion headers
// (n-d-version, n-d-version-weight, n-d-region, n-d-address) the proxy
// honours and passes on; it removes them from every other request.
type Trust struct {
	// ClientIPs are addresses or CIDR prefixes of trusted connections.
	ClientIPs []string `json:"clientIPs,omitempty"`
	// Header, with the value Secret, marks a trusted request (the header
	// is never forwarded).
	Header string `json:"header,omitempty"`
	Secret string `json:"secret,omitempty"`
}

// Equal reports whether two settings are the same.
func (s Settings) Equal(o Settings) bool {
	return s.Listen == o.Listen && s.StickyHeader == o.StickyHeader && s.StickyCookie == o.StickyCookie &&
		s.Salt == o.Salt && slices.Equal(s.Trust.ClientIPs, o.Trust.ClientIPs) &&
		s.Trust.Header == o.Trust.Header && s.Trust.Secret == o.Trust.Secret
}

// SettingsOf returns the proxy settings of a release: its proxy address
// (spec.Release.ProxyListen), sticky names, gray.salt and traffic.trust
// (the trust secret is read from the environment variable
// traffic.trust.secretEnv names, which must not be empty).
func SettingsOf(rel *spec.Release) (Settings, error) {
	s := Settings{Listen: rel.ProxyListen()}
	if rel.Gray != nil {
		s.Salt = rel.Gray.Salt
	}
	if t := rel.Traffic; t != nil {
		s.StickyHeader, s.StickyCookie = t.StickyHeader, t.StickyCookie
		if tr := t.Trust; tr != nil {
			s.Trust.ClientIPs = slices.Clone(tr.ClientIPs)
			secret, err := tr.Secret(os.Getenv)
			if err != nil {
				return Settings{}, err
			}
			s.Trust.Header, s.Trust.Secret = tr.Header, secret
		}
	}
	return s, nil
}

// Endpoints are an app's ready instance addresses by version.
type Endpoints map[string][]string

// Update changes one app's proxy. Nil fields are left as they are.
type Update struct {
	// Settings replaces the app's settings (listen address, sticky names).
	Settings *Settings `json:"settings,omitempty"`
	// Split replaces the split in force.
	Split *traffic.Split `json:"split,omitempty"`
	// Endpoints replaces every ready endpoint (an empty map removes all).
	// Removed endpoints drain: requests in flight finish.
	Endpoints *Endpoints `json:"endpoints,omitempty"`
	// Remove takes these addresses out of routing after Endpoints is
	// applied (a backend about to stop the instance drains it).
	Remove []string `json:"remove,omitempty"`
}

// Routes is what one app's proxy serves by.
type Routes struct {
	App       string        `json:"app"`
	Settings  Settings      `json:"settings"`
	Split     traffic.Split `json:"split"`
	Endpoints Endpoints     `json:"endpoints"`
	// Addr is the address it listens on ("" when it does not listen).
	Addr string `json:"addr,omitempty"`
	// ListenError says why it does not listen on Settings.Listen.
	ListenError string `json:"listenError,omitempty"`
}

// DataPlane holds the app proxies that serve requests: Local runs them in
// this process; package proxyd runs them in a process of their own that
// outlives graylane. The Router drives a DataPlane.
//
// Contract: every method honours ctx and is safe for concurrent use.
// Update is idempotent and level-triggered (the same update twice changes
// nothing); it creates the app's proxy when it has none, and a split
// rejected by traffic.ValidateSplit changes nothing. A listen failure is
// returned as an error after the rest of the update was applied (the
// proxy keeps its routes and listens again at the next Update with
// Settings).
type DataPlane interface {
	// Update applies u to app's proxy and returns its routes afterwards.
	Update(ctx context.Context, app string, u Update) (Routes, error)
	// Routes returns app's routes, or an error wrapping ErrUnknownApp.
	Routes(ctx context.Context, app string) (Routes, error)
	// Apps lists the apps that have a proxy, sorted.
	Apps(ctx context.Context) ([]string, error)
	// InFlight returns the requests being served by addr for app, whether
	// addr is routed or removed and draining (0 for an unknown app).
	InFlight(ctx context.Context, app, addr string) (int, error)
	// Forget closes app's proxy and forgets its routes. Idempotent.
	Forget(ctx context.Context, app string) error
}
