package rollout

import (
	"fmt"
	"sort"

	"github.com/graylane/graylane/traffic"
)

// rolling replaces old instances by new ones within maxSurge and
// maxUnavailable, traffic following ready instances (package
// documentation, "Rolling").
func (p *planner) rolling() {
	next := &p.next
	d, s := next.CanaryVersion, next.StableVersion
	R := p.replicas
	surge := p.strategy.MaxSurge.Scaled(R, true, (R*25+99)/100)
	unavail := p.strategy.MaxUnavailable.Scaled(R, false, R*25/100)
	if next.PromoteFull {
		surge, unavail = R, R
	}
	if surge == 0 && unavail == 0 {
		surge = 1
	}
	c := p.obs(d)
	if c.Total == 0 && p.confirmHeld(d) { // hooks.go: rolling has no last step; it is held at its start
		p.want[d], p.want[s] = 0, R
		if p.obs(s).Ready > 0 {
			p.split = splitOf(weight(s, 100))
		}
		p.progressMark = fmt.Sprintf("rolling/%s/confirm", d)
		return
	}
	// old versions: strays first (sorted), stable last
	var old []string
	for v := range p.in.Observed.Versions {
		if v != d && v != s {
			old = append(old, v)
		}
	}
	sort.Strings(old)
	old = append(old, s)
	oldTotal, oldReady := 0, 0
	for _, v := range old {
		oldTotal += p.obs(v).Total
		oldReady += p.obs(v).Ready
	}
	newWant := min(R, max(c.Total, R+surge-oldTotal))
	removable := (oldTotal - oldReady) + max(0, min(oldReady, oldReady+c.Ready-(R-unavail)))
	oldWant := oldTotal - removable
	if c.Ready >= R {
		oldWant = 0
	}
	p.want[d] = newWant
	drop := oldTotal - oldWant
	for _, v := range old {
		t := p.obs(v).Total
		take := min(drop, t)
		p.want[v] = t - take
		drop -= take
	}
	// traffic follows ready instances that are staying
	var ready []traffic.VersionCount
	if r := min(c.Ready, newWant); r > 0 {
		ready = append(ready, instances(d, r))
	}
	for i := len(old) - 1; i >= 0; i-- {
		v := old[i]
		if r := min(p.obs(v).Ready, p.want[v]); r > 0 {
			ready = append(ready, instances(v, r))
		}
	}
	if len(ready) > 0 {
		p.split = followInstances(ready)
	}
	p.progressMark = fmt.Sprintf("rolling/%s/%d/%d/%d/%d", d, c.Ready, c.Total, oldReady, oldTotal)
	p.msg = fmt.Sprintf("rolling %s: %d/%d new ready, %d old left", d, c.Ready, R, oldTotal)
	if c.Ready >= R && oldTotal == 0 {
		p.finalize("promoted")
	}
}
