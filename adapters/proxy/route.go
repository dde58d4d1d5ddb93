package proxy

import (
	"math/rand/v2"
	"net/http"
	"sort"
	"time"

	"github.com/graylane/graylane/gray"
)

// maxTried bounds the endpoints one request tries (and MaxAttempts).
const maxTried = 16

// Bucket returns the user bucket (0..gray.Buckets-1) the proxy gives a
// sticky user key with the default salt: gray.Bucket(spec.DefaultGraySalt,
// key), the bucketing of docs/gray.md shared with nginx and the SDK. An
// app with gray.salt buckets with that salt instead.
//
//	Bucket("user-1") = 4109   (on a canary from 41.10%)
//	Bucket("alice")  =  134   (on a canary from 1.35%)
func Bucket(key string) int {
	b, _ := gray.NewHasher(defaultRouting.salt).Bucket(key)
	return b
}

var defaultRouting, _ = compileRouting(Settings{})

// cumEntry is one version of a cumulative weight list: it owns the buckets
// below cum not owned by an earlier entry.
type cumEntry struct {
	g   *group // nil when the version has no endpoint
	cum int    // in buckets (weight * 100)
}

// table is the immutable routing state, rebuilt on every change.
type table struct {
	app      string
	r        routing
	groups   map[string]*group // versions with endpoints
	weighted []cumEntry        // weight > 0, in split order; cum ends at gray.Buckets
	eff      []cumEntry        // weighted versions with endpoints
	effTotal int
	any      []*group // every version with endpoints: weighted ones first
	preview  string
	routed   map[string]bool     // versions a trusted caller may pin: weight > 0, preview
	ndv      map[string][]string // version -> its n-d-version value {"app":"version"}
}

// publishLocked rebuilds the table from the proxy's state.
func (p *Proxy) publishLocked() {
	t := &table{app: p.app, r: p.routing, groups: map[string]*group{}, preview: p.split.Preview,
		routed: map[string]bool{}, ndv: map[string][]string{}}
	addrs := make([]string, 0, len(p.live))
	for a := range p.live {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		e := p.live[a]
		g := t.groups[e.version]
		if g == nil {
			g = &group{version: e.version}
			t.groups[e.version] = g
			t.ndv[e.version] = []string{gray.EncodeVersionHeader([]gray.AppVersion{{App: p.app, Version: e.version}})}
		}
		g.eps = append(g.eps, e)
	}
	cum := 0
	seen := map[string]bool{}
	for _, w := range p.split.Weights {
		if w.Weight <= 0 {
			continue
		}
		t.routed[w.Version] = true
		g := t.groups[w.Version]
		cum += w.Weight * 100
		t.weighted = append(t.weighted, cumEntry{g: g, cum: cum})
		if g != nil {
			t.effTotal += w.Weight * 100
			t.eff = append(t.eff, cumEntry{g: g, cum: t.effTotal})
			t.any = append(t.any, g)
			seen[w.Version] = true
		}
	}
	if t.preview != "" {
		t.routed[t.preview] = true
	}
	versions := make([]string, 0, len(t.groups))
	for v := range t.groups {
		if !seen[v] {
			versions = append(versions, v)
		}
	}
	sort.Strings(versions)
	for _, v := range versions {
		t.any = append(t.any, t.groups[v])
	}
	p.table.Store(t)
}

// choice is a request's routing key: its user bucket 0..9999, a second
// uniform number for falling back over the versions that have endpoints,
// the version a trusted caller pinned, and whether the caller is trusted.
type choice struct {
	bucket  int
	fine    uint32
	pinned  string
	trusted bool
}

// route computes the request's choice:
//
//  1. a trusted caller (Settings.Trust) reaches a version the split routes
//     to (the preview, or one with a weight: an analysis check aimed at the
//     canary) with X-Graylane-Version, or pins the version its n-d-version
//     names for this app when the split routes to it;
//  2. the user key (sticky header, else cookie) gets its bucket by the
//     bucketing of docs/gray.md with the app's salt, the same in nginx
//     and the SDK; fine is the hash's high 32 bits;
//  3. a request without a user key gets a random bucket.
func (t *table) route(h http.Header, remoteAddr string) choice {
	var c choice
	c.trusted = t.r.trusted(h, remoteAddr)
	if c.trusted {
		if v := h[previewKey]; len(v) > 0 && t.routed[v[0]] {
			c.pinned = v[0]
		} else if v := h[ndVersion]; len(v) > 0 {
			for _, e := range gray.ParseVersionHeader(v[0]) {
				if (e.App == t.app || e.App == gray.AllApps) && t.routed[e.Version] {
					c.pinned = e.Version
					if e.App == t.app {
						break
					}
				}
			}
		}
	}
	key := ""
	if v := h[t.r.header]; len(v) > 0 {
		key = v[0]
	}
	if gray.NormalizeKey(key) == "" {
		key, _ = gray.CookieValue(h, t.r.cookie)
	}
	if hash, ok := t.r.hasher.Hash(key); ok {
		c.bucket, c.fine = int(hash%gray.Buckets), uint32(hash>>32)
		return c
	}
	r := rand.Uint64()
	c.bucket, c.fine = int(r%gray.Buckets), uint32(r>>32)
	return c
}

var previewKey = http.CanonicalHeaderKey(gray.HeaderPreview)

// pick chooses the endpoint for bucket b: the pinned version when it has
// endpoints, else the version owning b, else (when the owner has no usable
// endpoint) b's position within the owner's share rescaled over the weighted
// versions with endpoints, else (before the first split, or after a failed
// attempt) any version with endpoints. Endpoints in tried are skipped;
// endpoints marked down are used only when nothing else is left.
func (t *table) pick(c choice, tried []*endpoint, failover bool) *endpoint {
	now := time.Now().UnixNano()
	pinned := c.pinned
	owner, ok := lookup(t.weighted, c.bucket)
	for pass := 0; pass < 2; pass++ {
		allowDown := pass == 1
		if pinned != "" {
			if g := t.groups[pinned]; g != nil {
				if e := g.next(tried, now, allowDown); e != nil {
					return e
				}
			}
		}
		if ok && owner.g != nil {
			if e := owner.g.next(tried, now, allowDown); e != nil {
				return e
			}
		}
		if t.effTotal > 0 {
			// Spread the owner's share over the others in proportion to
			// their weights: fine scaled to 0..effTotal-1.
			rb := int(uint64(c.fine) * uint64(t.effTotal) >> 32)
			if e, found := lookup(t.eff, rb); found {
				if e := e.g.next(tried, now, allowDown); e != nil {
					return e
				}
			}
			// The owner of the rescaled bucket is exhausted: try the others.
			for _, en := range t.eff {
				if e := en.g.next(tried, now, allowDown); e != nil {
					return e
				}
			}
		}
		// A version outside the split serves only before the first split,
		// or as a failover once an attempt of this request failed:
		// endpoints merely missing from the weighted versions (a restart
		// still adding them, a sync in flight) never send a request there.
		if len(t.weighted) == 0 || failover {
			for _, g := range t.any {
				if e := g.next(tried, now, allowDown); e != nil {
					return e
				}
			}
		}
	}
	return nil
}

// lookup returns the first entry whose cumulative weight exceeds b.
func lookup(entries []cumEntry, b int) (cumEntry, bool) {
	for _, c := range entries {
		if b < c.cum {
			return c, true
		}
	}
	return cumEntry{}, false
}
