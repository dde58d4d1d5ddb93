package engine

import (
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
