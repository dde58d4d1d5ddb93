package sdk

import (
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
)

// Router decides requests from the gray documents it holds, one per app.
// It is safe for concurrent use; documents are replaced atomically, so a
// decision always uses one consistent set.
type Router struct {
	self     gray.Self
	ipHeader string
	edge     bool
	trusted  func(*http.Request) bool
	log      *slog.Logger

	set atomic.Pointer[tableSet]

	mu      sync.Mutex // serialises updates
	changed chan struct{}
}

type tableSet struct {
	apps   []string // sorted
	tables map[string]*gray.Table
}

// RouterConfig configures a Router.
type RouterConfig struct {
	// Self is the deciding instance (region, zone, labels), for rules on
	// the deciding instance.
	Self gray.Self
	// ClientIPHeader makes rules read the client IP from a header set by a
	// proxy you trust (X-Forwarded-For: the first address; X-Real-IP)
	// instead of the connection's address.
	ClientIPHeader string
	// Edge marks the router as the edge: the steering headers of incoming
	// requests (n-d-version, n-d-version-weight, n-d-region, n-d-address
	// and X-Graylane-Version) are ignored, unless Trusted accepts the
	// request, and every request is decided here. Use it where requests
	// come from outside (a gateway, a public service) so clients cannot
	// pick versions. Without it, incoming steering headers are honoured
	// (see Decide).
	Edge bool
	// Trusted names the callers an edge router believes (testers: a VPN
	// range, a secret header): their steering headers count as behind the
	// edge. Nil trusts nobody.
	Trusted func(*http.Request) bool
	// Logger defaults to discarding (logx.OrDiscard).
	Logger *slog.Logger
}

// NewRouter returns a router with no documents.
func NewRouter(cfg RouterConfig) *Router {
	r := &Router{self: cfg.Self, edge: cfg.Edge, trusted: cfg.Trusted, log: logx.OrDiscard(cfg.Logger), changed: make(chan struct{})}
	if cfg.ClientIPHeader != "" {
		r.ipHeader = http.CanonicalHeaderKey(cfg.ClientIPHeader)
	}
	r.set.Store(&tableSet{tables: map[string]*gray.Table{}})
	return r
}

// Set puts a document in force for its app (replacing the previous one).
func (r *Router) Set(doc *gray.Document) {
	t := gray.Compile(doc, r.self)
	r.update(func(m map[string]*gray.Table) { m[doc.App] = t })
}

// Remove drops app's document: its requests are no longer decided.
func (r *Router) Remove(app string) {
	r.update(func(m map[string]*gray.Table) { delete(m, app) })
}

// Replace puts exactly docs in force (a full listing).
func (r *Router) Replace(docs []*gray.Document) {
	tables := make(map[string]*gray.Table, len(docs))
	for _, d := range docs {
		tables[d.App] = gray.Compile(d, r.self)
	}
	r.update(func(m map[string]*gray.Table) {
		clear(m)
		for k, v := range tables {
			m[k] = v
		}
	})
}

func (r *Router) update(f func(map[string]*gray.Table)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.set.Load()
	m := make(map[string]*gray.Table, len(old.tables)+1)
	for k, v := range old.tables {
		m[k] = v
	}
	f(m)
	ns := &tableSet{tables: m}
	for app := range m {
		ns.apps = append(ns.apps, app)
	}
	slices.Sort(ns.apps)
	r.set.Store(ns)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Changed returns a channel closed at the next update of the documents.
func (r *Router) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Table returns app's compiled document, or nil.
func (r *Router) Table(app string) *gray.Table { return r.set.Load().tables[app] }

// Generation returns the generation of app's document in force (0: none).
func (r *Router) Generation(app string) int64 {
	if t := r.Table(app); t != nil {
		return t.Generation()
	}
	return 0
}

// Apps returns the apps the router has documents for, sorted.
func (r *Router) Apps() []string { return slices.Clone(r.set.Load().apps) }

// DecideApp decides app's version for one request with app's document
// alone (no incoming decision is consulted). It allocates nothing: this is
// the per-app cost of a decision.
func (r *Router) DecideApp(app string, req *http.Request) gray.Result {
	t := r.set.Load().tables[app]
	if t == nil {
		return gray.Result{}
	}
	in := gray.Input{Req: req, ClientIPHeader: r.ipHeader}
	return t.Decide(&in)
}

// Decide makes the request's decision for every app the router has a
// document for. Behind the edge (or at the edge for a trusted caller) the
// request's Nepxion headers steer it, in this order of precedence:
//
//  1. n-d-version pins an app to a version, if its document routes to it;
//  2. n-d-version-weight ("v1=90;v2=10" per app) splits the app's requests
//     by the user's bucket over the weighted versions its document routes
//     to (the same user always gets the same version);
//  3. otherwise the app's document decides (preview, rules, split).
//
// n-d-region and n-d-address do not change the version: they choose among
// its instances (Transport). Pins and steering headers for apps this
// router has no document for are passed on unchanged. At the edge an
// untrusted caller's steering headers, X-Graylane-Version included, are
// ignored.
func (r *Router) Decide(req *http.Request) *Decision {
	set := r.set.Load()
	steer := !r.edge || (r.trusted != nil && r.trusted(req))
	var pins []gray.AppVersion
	d := &Decision{}
	var weights []gray.AppValue
	if steer {
		if h := req.Header[headerVersion]; len(h) > 0 {
			pins = gray.ParseVersionHeader(h[0])
		}
		if h := req.Header[headerWeight]; len(h) > 0 {
			weights = gray.ParseAppHeader(h[0])
			d.fwdWeight = h[0]
		}
		if h := req.Header[headerRegion]; len(h) > 0 {
			d.regions = gray.ParseAppHeader(h[0])
			d.fwdRegion = h[0]
		}
		if h := req.Header[headerAddress]; len(h) > 0 {
			d.addrs = gray.ParseAppHeader(h[0])
			d.fwdAddress = h[0]
		}
	}
	in := gray.Input{Req: req, ClientIPHeader: r.ipHeader, IgnorePreview: !steer}
	d.entries = make([]gray.AppVersion, 0, len(set.apps)+len(pins))
	for _, app := range set.apps {
		t := set.tables[app]
		if v := pinned(pins, app); v != "" && t.Routes(v) {
			d.entries = append(d.entries, gray.AppVersion{App: app, Version: v})
			continue
		}
		if ws := gray.ValueFor(weights, app); ws != "" {
			if v := byWeights(gray.ParseWeights(ws), t, &in); v != "" {
				d.entries = append(d.entries, gray.AppVersion{App: app, Version: v})
				continue
			}
		}
		if res := t.Decide(&in); res.Version != "" {
			d.entries = append(d.entries, gray.AppVersion{App: app, Version: res.Version})
		}
	}
	for _, p := range pins {
		if _, known := set.tables[p.App]; !known && p.App != gray.AllApps {
			d.entries = append(d.entries, p)
		}
	}
	slices.SortFunc(d.entries, func(a, b gray.AppVersion) int {
		switch {
		case a.App < b.App:
			return -1
		case a.App > b.App:
			return 1
		}
		return 0
	})
	d.userKey = in.UserKey()
	if d.userKey == "" {
		d.userKey = userKeyOf(req, set)
	}
	d.header = gray.EncodeVersionHeader(d.entries)
	return d
}

// byWeights picks a version from an n-d-version-weight list: only the
// versions t routes to count, and the user's bucket b (0..9999, t's salt)
// scaled to their total picks the first whose running total exceeds it.
// "" when no listed version is routed.
func byWeights(ws []gray.VersionWeight, t *gray.Table, in *gray.Input) string {
	total := 0
	for _, w := range ws {
		if w.Weight > 0 && t.Routes(w.Version) {
			total += w.Weight
		}
	}
	if total == 0 {
		return ""
	}
	b := t.Bucket(in) * total / gray.Buckets
	upto := 0
	for _, w := range ws {
		if w.Weight > 0 && t.Routes(w.Version) {
			upto += w.Weight
			if b < upto {
				return w.Version
			}
		}
	}
	return ""
}

var (
	headerWeight  = http.CanonicalHeaderKey(gray.HeaderVersionWeight)
	headerRegion  = http.CanonicalHeaderKey(gray.HeaderRegion)
	headerAddress = http.CanonicalHeaderKey(gray.HeaderAddress)
)

var headerVersion = http.CanonicalHeaderKey(gray.HeaderVersion)

func pinned(pins []gray.AppVersion, app string) string {
	all := ""
	for _, p := range pins {
		if p.App == app {
			return p.Version
		}
		if p.App == gray.AllApps {
			all = p.Version
		}
	}
	return all
}

// userKeyOf reads the user key the way the first document names it (the
// default header and cookie without documents), so it can be propagated
// even when no rule needed it.
func userKeyOf(req *http.Request, set *tableSet) string {
	header, cookie := http.CanonicalHeaderKey(gray.DefaultUserHeader), gray.DefaultUserCookie
	if len(set.apps) > 0 {
		t := set.tables[set.apps[0]]
		header, cookie = t.UserHeader(), t.UserCookie()
	}
	if header != "" {
		if v := req.Header[header]; len(v) > 0 {
			if k := gray.NormalizeKey(v[0]); k != "" {
				return k
			}
		}
	}
	if cookie != "" {
		if v, ok := gray.CookieValue(req.Header, cookie); ok {
			return gray.NormalizeKey(v)
		}
	}
	return ""
}
