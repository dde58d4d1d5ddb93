package rollout

import (
	"fmt"
	"time"

	"github.com/graylane/graylane/spec"
)

// command applies the operator's command to the status.
func (p *planner) command() {
	next := &p.next
	reject := func(format string, args ...any) {
		p.decision.CommandErr = fmt.Sprintf(format, args...)
		p.event(Warning, "CommandRejected", "%s: %s", p.in.Command, p.decision.CommandErr)
	}
	inProgress := next.CanaryVersion != ""
	switch p.in.Command {
	case CmdNone:
	case CmdPause:
		if next.Paused {
			reject("already paused")
			return
		}
		next.Paused = true
		p.event(Normal, "Paused", "paused by operator")
	case CmdResume:
		switch {
		case len(p.failedHooks()) > 0: // hooks.go
			p.decision.RetryHooks = p.failedHooks()
			next.Paused = false
			p.event(Normal, "Retry", "retrying the failed release hooks of %s", p.in.Spec.Version)
		case next.Paused:
			next.Paused = false
			p.event(Normal, "Resumed", "resumed by operator")
		case inProgress && p.atIndefinitePause():
			p.advance("resumed")
		case inProgress && p.strategy.Type == spec.BlueGreen && !next.Rollback && next.Step >= 1 && !p.strategy.AutoPromote():
			next.PromoteFull = true
			p.event(Normal, "Promote", "blue-green switch requested")
		case next.RejectedVersion != "" && next.RejectedVersion == p.in.Spec.Version:
			p.event(Normal, "Retry", "retrying %s", next.RejectedVersion)
			next.RejectedVersion = ""
		default:
			reject("nothing is paused, waiting or rejected")
		}
	case CmdPromote:
		switch {
		case !inProgress:
			reject("no rollout in progress")
		case next.Rollback:
			reject("a rollback is in progress; it has no steps")
		case p.strategy.Type == spec.Canary:
			if next.Step >= len(p.strategy.Steps) {
				reject("already promoting")
				return
			}
			next.Paused = false
			p.advance("promoted by operator")
		case p.strategy.Type == spec.BlueGreen:
			next.Paused = false
			next.PromoteFull = true
			p.event(Normal, "Promote", "blue-green switch requested")
		default:
			reject("a rolling update has no steps; use promote-full to finish it at once")
		}
	case CmdPromoteFull:
		switch {
		case !inProgress:
			reject("no rollout in progress")
		case p.strategy.Type == spec.Rolling && !next.Rollback:
			next.PromoteFull = true
			next.Paused = false
			p.event(Normal, "PromoteFull", "finishing rolling update at once")
		default:
			next.PromoteFull = true
			next.Paused = false
			p.event(Normal, "PromoteFull", "skipping remaining steps of %s", next.CanaryVersion)
		}
	case CmdAbort:
		if !inProgress {
			reject("no rollout in progress")
			return
		}
		p.cancel("aborted", Degraded)
		next.Message = "aborted by operator"
	case CmdRollback:
		switch {
		case inProgress && !next.Rollback:
			p.cancel("rolled-back", RolledBack)
			next.Message = "rolled back by operator"
		case !inProgress && next.PreviousVersion != "" && next.PreviousVersion != next.StableVersion:
			from := next.StableVersion
			next.RejectedVersion = p.in.Spec.Version
			p.start(next.PreviousVersion, true)
			p.event(Normal, "Rollback", "rolling back from %s to %s", from, next.PreviousVersion)
		default:
			reject("no previous version to roll back to")
		}
	default:
		reject("unknown command")
	}
}

// cancel ends the rollout in progress: its version is rejected and taken
// out of traffic; stable keeps serving.
func (p *planner) cancel(outcome string, phase Phase) {
	v := p.next.CanaryVersion
	p.next.RejectedVersion = v
	p.next.CanaryVersion = ""
	p.resetRollout()
	p.next.Phase = phase
	p.record(v, outcome)
	p.event(Warning, map[Phase]string{Degraded: "Aborted", RolledBack: "RolledBack"}[phase], "%s %s; %s keeps serving", v, outcome, p.next.StableVersion)
}

func (p *planner) resetRollout() {
	p.next.Step = 0
	p.next.StepStartedAt = time.Time{}
	p.next.PromoteFull = false
	p.next.Rollback = false
	p.next.CanaryScale = nil
	p.next.DeadlineExceeded = false
}

// start begins a rollout of v.
func (p *planner) start(v string, rollback bool) {
	if old := p.next.CanaryVersion; old != "" && old != v {
		p.record(old, "superseded")
		p.event(Normal, "Superseded", "rollout of %s superseded by %s", old, v)
	}
	p.next.CanaryVersion = v
	p.resetRollout()
	p.next.Rollback = rollback
	p.next.StepStartedAt = p.in.Now
	p.next.LastProgressAt = p.in.Now
	p.next.ProgressMark = ""
	if !rollback {
		p.event(Normal, "RolloutStarted", "rolling out %s over %s (%s)", v, p.next.StableVersion, p.strategy.Type)
	}
}
