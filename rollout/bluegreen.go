package rollout

import (
	"fmt"
	"time"
)

// blueGreen brings the new version up at R beside the stable one, reachable
// as a preview, then switches all traffic at once (package documentation,
// "Blue-green").
func (p *planner) blueGreen() {
	next := &p.next
	d, s := next.CanaryVersion, next.StableVersion
	c := p.obs(d)
	p.want[d] = p.replicas
	p.want[s] = p.replicas
	ready := c.Ready >= p.replicas
	if p.obs(s).Ready > 0 {
		p.split = splitOf(weight(s, 100))
	}
	if c.Ready > 0 && p.split != nil {
		p.split.Preview = d
	}
	p.progressMark = fmt.Sprintf("bluegreen/%s/%d/%d/%d", d, next.Step, c.Ready, c.Total)
	p.msg = fmt.Sprintf("blue-green %s: %d/%d ready for preview", d, c.Ready, p.replicas)
	if next.Step == 0 && ready {
		next.Step = 1
		next.StepStartedAt = p.in.Now
		p.event(Normal, "PreviewReady", "%s ready for preview (header X-Graylane-Version: %s)", d, d)
	}
	if next.Step < 1 || next.Paused {
		return
	}
	switchNow := next.PromoteFull
	if !switchNow {
		if !p.strategy.AutoPromote() {
			p.waiting = true
			p.humanWait = fmt.Sprintf("%s is ready for preview: promote to switch traffic", d)
			p.progressMark = fmt.Sprintf("bluegreen/%s/preview", d)
			return
		}
		delay := time.Duration(0)
		if p.strategy.AutoPromotionDelay != nil {
			delay = p.strategy.AutoPromotionDelay.Duration
		}
		until := next.StepStartedAt.Add(delay)
		if p.in.Now.Before(until) {
			p.waiting = true
			p.progressMark = fmt.Sprintf("bluegreen/%s/preview", d)
			p.wake(until.Sub(p.in.Now))
			p.msg = fmt.Sprintf("blue-green %s: previewing, switching in %s", d, until.Sub(p.in.Now).Round(time.Second))
			return
		}
	}
	if !ready || p.confirmHeld(d) { // hooks.go
		return
	}
	p.split = splitOf(weight(d, 100))
	if p.confirmed(p.split) {
		p.finalize("promoted")
		return
	}
	p.msg = fmt.Sprintf("blue-green %s: switching traffic", d)
}
