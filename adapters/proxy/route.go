package proxy

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// maxTried bounds the endpoints one request tries (and MaxAttempts).
const maxTried = 16

// Bucket returns the sticky bucket of a user: FNV-1a (32-bit) of the raw
// header or cookie value, mod 100. Other routers that want to agree with the
// proxy on who is in the canary compute the same.
//
//	Bucket("alice")   = 2267157479 % 100 = 79
//	Bucket("bob")     = 2261164244 % 100 = 44
//	Bucket("user-1")  = 4115888500 % 100 = 0   (in a canary from 1%)
//	Bucket("user-42") =   39875499 % 100 = 99  (in a canary only at 100%)
func Bucket(value string) int {
	return int(fnv1a(value) % 100)
}

func fnv1a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// endpoint is one ready instance address.
type endpoint struct {
	addr     string
	version  string
	hdr      []string // {addr}, shared by every response's UpstreamHeader
	inflight atomic.Int64
	removed  atomic.Bool
	// downUntil (unix nanoseconds) is set after a failed connection; the
	// endpoint is skipped until then while others are available.
	downUntil atomic.Int64
}

// acquire counts a request on e unless e was removed. The increment comes
// before the check and removal sets the flag before draining reads the count,
// so either the request sees the flag or the drain sees the request.
func (e *endpoint) acquire() bool {
	e.inflight.Add(1)
	if e.removed.Load() {
		e.inflight.Add(-1)
		return false
	}
	return true
}

func (e *endpoint) release() { e.inflight.Add(-1) }

func (e *endpoint) down(now int64) bool {
	d := e.downUntil.Load()
	return d != 0 && now < d
}

// group is one version's endpoints in a table.
type group struct {
	version string
	eps     []*endpoint
	rr      atomic.Uint32
}

// next returns the next endpoint in turn that is not in tried (and not down,
// unless allowDown).
func (g *group) next(tried []*endpoint, now int64, allowDown bool) *endpoint {
	n := uint32(len(g.eps))
	if n == 0 {
		return nil
	}
	start := g.rr.Add(1)
	for i := uint32(0); i < n; i++ {
		e := g.eps[(start+i)%n]
		if contains(tried, e) || (!allowDown && e.down(now)) {
			continue
		}
		return e
	}
	return nil
}

func contains(tried []*endpoint, e *endpoint) bool {
	for _, t := range tried {
		if t == e {
			return true
		}
	}
	return false
}

// cumEntry is one version of a cumulative weight list: it owns the buckets
// below cum not owned by an earlier entry.
type cumEntry struct {
	g   *group // nil when the version has no endpoint
	cum int
}

// table is the immutable routing state, rebuilt on every change.
type table struct {
	header   string
	cookie   string
	groups   map[string]*group // versions with endpoints
	weighted []cumEntry        // weight > 0, in split order; cum ends at 100
	eff      []cumEntry        // weighted versions with endpoints
	effTotal int
	any      []*group // every version with endpoints: weighted ones first
}

// publishLocked rebuilds the table from the proxy's state.
func (p *Proxy) publishLocked() {
	t := &table{header: p.header, cookie: p.cookie, groups: map[string]*group{}}
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
		}
		g.eps = append(g.eps, e)
	}
	cum := 0
	seen := map[string]bool{}
	for _, w := range p.split.Weights {
		if w.Weight <= 0 {
			continue
		}
		g := t.groups[w.Version]
		cum += w.Weight
		t.weighted = append(t.weighted, cumEntry{g: g, cum: cum})
		if g != nil {
			t.effTotal += w.Weight
			t.eff = append(t.eff, cumEntry{g: g, cum: t.effTotal})
			t.any = append(t.any, g)
			seen[w.Version] = true
		}
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

// choice is a request's routing key: its bucket 0..99, a second uniform
// number for falling back over the versions that have endpoints, and the
// version it asks for by header.
type choice struct {
	bucket int
	fine   uint32
	pinned string
}

// route computes the request's choice. For a sticky user both numbers
// derive from the hash of the value, so the user always lands on the same
// version; fine multiplies the hash by an odd constant (Fibonacci hashing)
// so its high bits do not follow the bucket.
func (t *table) route(h http.Header) choice {
	var c choice
	if v := h[VersionHeader]; len(v) > 0 {
		c.pinned = v[0]
	}
	value, sticky := "", false
	if v := h[t.header]; len(v) > 0 && v[0] != "" {
		value, sticky = v[0], true
	} else {
		value, sticky = cookieValue(h, t.cookie)
	}
	if sticky {
		hash := fnv1a(value)
		c.bucket, c.fine = int(hash%100), hash*0x9E3779B1
		return c
	}
	r := rand.Uint64()
	c.bucket, c.fine = int((r>>32)%100), uint32(r)
	return c
}

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

// cookieValue finds a cookie in the Cookie headers without allocating.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v != "" {
				return v, true
			}
		}
	}
	return "", false
}

// dialError marks a failed connection: nothing was sent, so the request can
// go to another endpoint whatever its method.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// upstreams is the proxy seen as the ReverseProxy's transport: it picks the
// endpoint of each attempt and retries failed connections.
type upstreams Proxy

func (u *upstreams) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*Proxy)(u)
	t := p.table.Load()
	c := t.route(req.Header)
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{rc: req.Body}
		req.Body = body
	}
	var tried [maxTried]*endpoint
	n := 0
	var lastErr error
	for attempts := 0; attempts < p.maxAttempts && n < len(tried); {
		e := t.pick(c, tried[:n], attempts > 0)
		if e == nil {
			break
		}
		tried[n] = e
		n++
		if !e.acquire() {
			// Removed since this table was built: take the current one.
			t = p.table.Load()
			continue
		}
		out := req
		if attempts > 0 {
			// A failed attempt's request may still be read by the
			// transport's goroutines: give the next one its own copy.
			out = req.WithContext(req.Context())
			u := *req.URL
			out.URL = &u
		}
		attempts++
		out.URL.Host = e.addr
		resp, err := p.tr.RoundTrip(out)
		if err == nil {
			resp.Header[UpstreamHeader] = e.hdr
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// The upgraded connection is the body; it is not counted.
				e.release()
				return resp, nil
			}
			resp.Body = &countedBody{rc: resp.Body, e: e}
			return resp, nil
		}
		e.release()
		lastErr = err
		if req.Context().Err() != nil || !retriable(req.Method, body, err) {
			return nil, err
		}
		e.downUntil.Store(time.Now().Add(p.downFor).UnixNano())
		p.log.Debug("endpoint failed, trying another", "endpoint", e.addr, "version", e.version, "err", err)
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, ErrNoEndpoint
}

// retriable reports whether a failed attempt may be sent to another
// endpoint: always when the connection could not be made (nothing was sent),
// and for idempotent methods whose body, if any, was not read.
func retriable(method string, body *replayBody, err error) bool {
	var de *dialError
	var oe *net.OpError
	if errors.As(err, &de) || (errors.As(err, &oe) && oe.Op == "dial") {
		return body == nil || !body.read.Load()
	}
	if body != nil {
		return false
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// replayBody records whether a request body was read, so an attempt that
// failed before reading it can be sent again. Its Close leaves the client's
// body open (the ReverseProxy closes it) unless it was read.
type replayBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *replayBody) Close() error {
	if b.read.Load() {
		return b.rc.Close()
	}
	return nil
}

// countedBody keeps a request counted in flight until its response body is
// closed.
type countedBody struct {
	rc   io.ReadCloser
	e    *endpoint
	done atomic.Bool
}

func (b *countedBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

func (b *countedBody) Close() error {
	err := b.rc.Close()
	if b.done.CompareAndSwap(false, true) {
		b.e.release()
	}
	return err
}
