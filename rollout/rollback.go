package rollout

import (
	"fmt"
)

// rollBack moves traffic back to a previous version that is still running
// (within scaleDownDelay): no steps run; the previous version is brought to
// R and gets all traffic once ready, then becomes stable again.
func (p *planner) rollBack() {
	next := &p.next
	d, s := next.CanaryVersion, next.StableVersion
	c := p.obs(d)
	p.want[d] = p.replicas
	p.want[s] = p.replicas
	// "fast/": the mark's name from before Status.Fast became
	// Status.Rollback, kept so that persisted marks still match
	p.progressMark = fmt.Sprintf("fast/%s/%d/%d", d, c.Ready, c.Total)
	if c.Ready >= p.replicas {
		p.split = splitOf(weight(d, 100))
		if p.confirmed(p.split) {
			p.finalize("promoted")
			return
		}
	} else if p.obs(s).Ready > 0 {
		p.split = splitOf(weight(s, 100))
	}
	if c.Total >= p.replicas {
		p.msg = fmt.Sprintf("moving traffic back to %s (its instances are still up, no steps): %d/%d ready", d, c.Ready, p.replicas)
	} else {
		p.msg = fmt.Sprintf("rolling back to %s without steps: scaling it up first, %d/%d ready", d, c.Ready, p.replicas)
	}
}
