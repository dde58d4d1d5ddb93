package rollout

import (
	"fmt"
)

// deadline applies the progress deadline; it reports whether the status
// changed enough that compute must run again.
func (p *planner) deadline() bool {
	next := &p.next
	if p.progressMark != next.ProgressMark {
		next.ProgressMark = p.progressMark
		next.LastProgressAt = p.in.Now
		next.DeadlineExceeded = false
	}
	converging := next.CanaryVersion != "" || p.obs(next.StableVersion).Ready < p.replicas
	if p.waiting || next.Paused || !converging {
		return false
	}
	limit := p.strategy.EffectiveProgressDeadline()
	due := next.LastProgressAt.Add(limit)
	target := next.CanaryVersion
	if target == "" {
		target = next.StableVersion
	}
	stalled := p.in.Observed.Stalled[target]
	if p.in.Now.Before(due) && stalled == "" {
		p.wake(due.Sub(p.in.Now))
		return false
	}
	if !next.DeadlineExceeded {
		next.DeadlineExceeded = true
		if stalled != "" {
			p.event(Warning, "ProgressDeadlineExceeded", "the backend gave up on %s: %s", target, stalled)
		} else {
			p.event(Warning, "ProgressDeadlineExceeded", "no progress for %s: %s", limit, p.msg)
		}
	}
	if p.strategy.AutoRollback && next.CanaryVersion != "" && !next.Rollback {
		p.cancel("rolled-back", RolledBack)
		next.Message = fmt.Sprintf("progress deadline %s exceeded; rolled back", limit)
		return true
	}
	return false
}
