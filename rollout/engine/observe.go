package engine

import (
	"context"
	"maps"

	"github.com/graylane/graylane/rollout"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/traffic"
)

// cachedObservation returns the instances the app's last pass observed
// when this pass may use them instead of asking the backend: a timed pass
// (no event) over an idle app whose backend notifies every change
// (adapters.ChangeNotifier). Such an app costs no backend call per
// resync (the pass then skips an unchanged Apply too); any change its
// backend sees triggers a pass that asks. The router, graylane's own or
// a local nginx, is still read.
func (p *pass) cachedObservation() ([]adapters.Instance, bool) {
	if p.event || !p.idle || !adapters.NotifiesEveryChange(p.backend) {
		return nil, false
	}
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	l := p.e.live[p.app]
	if l == nil || l.applied == nil || l.lastError != "" {
		return nil, false
	}
	p.cached = true
	return append([]adapters.Instance(nil), l.instances...), true
}

// sameAsApplied reports whether want is what the app's last pass applied.
func (p *pass) sameAsApplied(want traffic.Replicas) bool {
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	l := p.e.live[p.app]
	if l == nil || l.applied == nil {
		return false
	}
	nz := func(r traffic.Replicas) map[string]int {
		out := map[string]int{}
		for v, n := range r {
			if n > 0 {
				out[v] = n
			}
		}
		return out
	}
	return maps.Equal(nz(l.applied), nz(want))
}

// met reports whether what runs is exactly what is wanted, every instance
// ready: an app whose pass changes nothing is idle only then.
func met(obs rollout.Observed, want traffic.Replicas) bool {
	for v, c := range obs.Versions {
		if c.Total != want[v] || c.Ready != c.Total {
			return false
		}
	}
	for v, n := range want {
		if n > 0 && obs.Versions[v].Total != n {
			return false
		}
	}
	return true
}

// loadRecord reads an app's record for a pass. With a ViewStore it first
// tries the quick read (etcd: serializable, answered by the member without
// a round through the leader, which waits behind a storm's writes) and
// keeps it only if it is at least as new as what this replica last read
// or wrote for the app: a quick read from a member that lags could
// otherwise bring back a status older than this replica's own last step,
// which would be applied before the compare-and-swap refused it. Missing
// from a lagging member, or not yet read here: the linearizable read.
// Another writer's newer change (a command queued through another
// replica) that a quick read misses only makes the save conflict, and the
// pass is retried.
func (e *Engine) loadRecord(ctx context.Context, app string) (Record, int64, error) {
	vs, ok := e.cfg.Store.(ViewStore)
	e.mu.Lock()
	var known int64
	if l := e.live[app]; l != nil {
		known = l.rev
	}
	e.mu.Unlock()
	if ok && known > 0 {
		rec, rev, err := vs.LoadView(ctx, app)
		if err == nil && rev >= known {
			return rec, rev, nil
		}
	}
	rec, rev, err := e.cfg.Store.Load(ctx, app)
	if err == nil && rev > 0 {
		e.setLive(app, func(l *live) { l.rev = max(l.rev, rev) })
	}
	return rec, rev, err
}

// specRev is the document revision whose spec this process last put into
// app's record (0: none).
func (e *Engine) specRev(app string) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l := e.live[app]; l != nil {
		return l.specRev
	}
	return 0
}
