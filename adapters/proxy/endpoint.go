package proxy

import "sync/atomic"

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
	// pool keeps the forwarder's idle connections to the endpoint.
	pool connPool
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

// next returns the less busy (fewer requests in flight) of the next two
// endpoints in turn that are not in tried (and not down, unless
// allowDown): round robin while they are even, and away from an instance
// that has fallen behind (a slow response, a descheduled process) before
// its queue grows. With one candidate left, that one.
func (g *group) next(tried []*endpoint, now int64, allowDown bool) *endpoint {
	n := uint32(len(g.eps))
	if n == 0 {
		return nil
	}
	start := g.rr.Add(1)
	var best *endpoint
	for i, seen := uint32(0), 0; i < n && seen < 2; i++ {
		e := g.eps[(start+i)%n]
		if contains(tried, e) || (!allowDown && e.down(now)) {
			continue
		}
		seen++
		if best == nil || e.inflight.Load() < best.inflight.Load() {
			best = e
		}
	}
	return best
}

func contains(tried []*endpoint, e *endpoint) bool {
	for _, t := range tried {
		if t == e {
			return true
		}
	}
	return false
}
