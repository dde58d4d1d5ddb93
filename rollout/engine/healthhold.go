// Health hold: after a restart, an app's passes decide nothing while the
// backend has not judged the health of the instances it adopted.

package engine

import (
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/spec"
)

// minHealthHold is the least time the engine holds an app for instances
// whose health stays pending, whatever its health settings.
const minHealthHold = 30 * time.Second

// healthHold is one app's hold: since when its passes hold, and whether
// the engine has said that it gave up holding.
type healthHold struct {
	since  time.Time
	warned bool
}

// healthHoldLimit bounds how long the engine holds rel's app for instances
// whose health stays pending (adapters.MetaHealthPending), so that a
// backend that never judges them cannot freeze the app: 10 health checks
// (interval + timeout each), which is more than a backend's failure
// threshold needs (3 by default), and at least minHealthHold.
func healthHoldLimit(rel *spec.Release) time.Duration {
	if rel == nil {
		return minHealthHold
	}
	h := healthprobe.SpecOf(rel.Health)
	return max(minHealthHold, 10*(h.Interval+h.Timeout))
}

// healthPending returns how many of insts the backend reports with their
// health pending (adapters.MetaHealthPending), or 0 once the app has been
// held for them for healthHoldLimit. It starts the app's hold clock at the
// first pass that sees one, and stops it at the first that sees none.
func (p *pass) healthPending(insts []adapters.Instance) int {
	n := 0
	for _, in := range insts {
		if in.Meta[adapters.MetaHealthPending] != "" {
			n++
		}
	}
	e := p.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if n == 0 {
		delete(e.healthHold, p.app)
		return 0
	}
	hold, ok := e.healthHold[p.app]
	if !ok {
		e.healthHold[p.app] = healthHold{since: p.now}
		return n
	}
	held, limit := p.now.Sub(hold.since), healthHoldLimit(p.rel)
	if held < limit {
		return n
	}
	if !hold.warned {
		hold.warned = true
		e.healthHold[p.app] = hold
		e.log.Warn("instances' health still pending; deciding without it", "app", p.app, "pending", n, "held", held.Round(time.Second), "limit", limit)
	}
	return 0
}
