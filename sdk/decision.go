package sdk

import (
	"context"
	"slices"
	"strings"

	"github.com/graylane/graylane/gray"
)

// Decision is a request's routing decision: the version each app's
// requests go to, made once at the edge of a call chain. It travels in the
// request's context.Context — so it survives goroutines, worker pools and
// any async work handed that context (use context.WithoutCancel for work
// that outlives the request) — and on outbound calls in the n-d-version
// header. A Decision is immutable and safe for concurrent use.
type Decision struct {
	entries []gray.AppVersion // sorted by app
	userKey string
	header  string
	// Nepxion's instance steering, honoured behind the edge: n-d-region
	// and n-d-address per app, and the raw headers to pass on.
	regions, addrs                   []gray.AppValue
	fwdWeight, fwdRegion, fwdAddress string
}

// Region returns the region n-d-region asks for app's instances ("" for
// none).
func (d *Decision) Region(app string) string {
	if d == nil {
		return ""
	}
	return gray.ValueFor(d.regions, app)
}

// Addresses returns the instance addresses n-d-address asks for app (nil
// for none).
func (d *Decision) Addresses(app string) []string {
	if d == nil {
		return nil
	}
	v := gray.ValueFor(d.addrs, app)
	if v == "" {
		return nil
	}
	var out []string
	for _, a := range strings.Split(v, ";") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Version returns the version decided for app.
func (d *Decision) Version(app string) (string, bool) {
	if d == nil {
		return "", false
	}
	i, ok := slices.BinarySearchFunc(d.entries, app, func(e gray.AppVersion, app string) int { return strings.Compare(e.App, app) })
	if !ok {
		return "", false
	}
	return d.entries[i].Version, true
}

// Entries returns a copy of every app's decided version, sorted by app.
func (d *Decision) Entries() []gray.AppVersion {
	if d == nil {
		return nil
	}
	return slices.Clone(d.entries)
}

// UserKey is the user key the decision was made for ("" if none).
func (d *Decision) UserKey() string {
	if d == nil {
		return ""
	}
	return d.userKey
}

// Header is the n-d-version value that carries the decision downstream.
func (d *Decision) Header() string {
	if d == nil {
		return "{}"
	}
	return d.header
}

func (d *Decision) String() string { return d.Header() }

type ctxKey struct{}

// NewContext returns ctx carrying d.
func NewContext(ctx context.Context, d *Decision) context.Context {
	return context.WithValue(ctx, ctxKey{}, d)
}

// FromContext returns the decision ctx carries.
func FromContext(ctx context.Context) (*Decision, bool) {
	d, ok := ctx.Value(ctxKey{}).(*Decision)
	return d, ok && d != nil
}

// VersionFor returns the version decided for app in ctx's decision.
func VersionFor(ctx context.Context, app string) (string, bool) {
	d, _ := FromContext(ctx)
	return d.Version(app)
}
