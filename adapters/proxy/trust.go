package proxy

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/spec"
)

// Headers an outside client could use to steer versions. The proxy removes
// them from requests of callers it does not trust (Settings.Trust) before
// forwarding, and sets n-d-version to its own decision.
var steeringHeaders = []string{
	http.CanonicalHeaderKey(gray.HeaderPreview),
	http.CanonicalHeaderKey(gray.HeaderVersion),
	http.CanonicalHeaderKey(gray.HeaderVersionWeight),
	http.CanonicalHeaderKey(gray.HeaderRegion),
	http.CanonicalHeaderKey(gray.HeaderAddress),
}

var ndVersion = http.CanonicalHeaderKey(gray.HeaderVersion)

// routing is a proxy's compiled Settings.
type routing struct {
	header, cookie string // canonical sticky header; cookie name
	salt           string
	hasher         gray.Hasher
	nets           []netip.Prefix
	trustHeader    string // canonical
	secret         string
}

// compileRouting validates s and compiles it; defaults: the sticky names
// DefaultStickyHeader / DefaultStickyCookie and the salt
// spec.DefaultGraySalt (shared by every app that does not set gray.salt,
// so a chain of apps at the same weights puts the same users on the
// canary at every hop).
func compileRouting(s Settings) (routing, error) {
	r := routing{header: s.StickyHeader, cookie: s.StickyCookie, salt: s.Salt}
	if r.header == "" {
		r.header = DefaultStickyHeader
	}
	if r.cookie == "" {
		r.cookie = DefaultStickyCookie
	}
	if r.salt == "" {
		r.salt = spec.DefaultGraySalt
	}
	var errs []error
	if !spec.GraySaltPattern.MatchString(r.salt) {
		errs = append(errs, fmt.Errorf("salt %q is not a salt (A-Z a-z 0-9 . _ -, 1 to 64)", r.salt))
	}
	if strings.ContainsAny(r.header, " \t\r\n:;,=\"") || strings.ContainsAny(r.cookie, " \t\r\n:;,=\"") {
		errs = append(errs, fmt.Errorf("sticky header %q or cookie %q is not a valid name", r.header, r.cookie))
	}
	r.header = http.CanonicalHeaderKey(r.header)
	r.hasher = gray.NewHasher(r.salt)
	for _, c := range s.Trust.ClientIPs {
		p, err := spec.ParseClientIP(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("trust.clientIPs: %w", err))
			continue
		}
		r.nets = append(r.nets, p)
	}
	if (s.Trust.Header == "") != (s.Trust.Secret == "") {
		errs = append(errs, errors.New("trust: a header needs its secret and a secret its header"))
	}
	if s.Trust.Header != "" {
		r.trustHeader, r.secret = http.CanonicalHeaderKey(s.Trust.Header), s.Trust.Secret
	}
	return r, errors.Join(errs...)
}

// trusted reports whether a request comes from a trusted caller: its
// connection's address is in Trust.ClientIPs, or it carries the trust
// header with the secret. Nobody is trusted by default.
func (r *routing) trusted(h http.Header, remoteAddr string) bool {
	if r.trustHeader != "" {
		if v := h[r.trustHeader]; len(v) > 0 && subtle.ConstantTimeCompare([]byte(v[0]), []byte(r.secret)) == 1 {
			return true
		}
	}
	if len(r.nets) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, n := range r.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// sanitize prepares a request's headers for forwarding: the trust header
// never leaves the proxy, and an untrusted caller's steering headers are
// dropped (n-d-version is set per attempt to the proxy's decision).
func (r *routing) sanitize(h http.Header, trusted bool) {
	if r.trustHeader != "" {
		delete(h, r.trustHeader)
	}
	if trusted {
		return
	}
	for _, k := range steeringHeaders {
		delete(h, k)
	}
}

// mergeVersionHeader returns a trusted caller's n-d-version with app's
// entry set to version (the caller's entries for other apps travel on).
func mergeVersionHeader(incoming, app, version string) string {
	entries := gray.ParseVersionHeader(incoming)
	out := make([]gray.AppVersion, 0, len(entries)+1)
	for _, e := range entries {
		if e.App != app && e.App != gray.AllApps {
			out = append(out, e)
		}
	}
	out = append(out, gray.AppVersion{App: app, Version: version})
	slices.SortFunc(out, func(a, b gray.AppVersion) int { return strings.Compare(a.App, b.App) })
	return gray.EncodeVersionHeader(out)
}
