package rollout

import (
	"fmt"
	"time"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// pollWhileConverging is how soon Plan asks to look again while it waits
// for instances, in case the backend cannot notify.
const pollWhileConverging = time.Second

// Plan decides the next step of one app's release. It is pure: no I/O, no
// clock (Input.Now is the time), no randomness; the same Input always gives
// the same Decision, which is what makes the engine crash-safe: after a
// restart the engine re-observes, plans again, and re-applies the same
// idempotent actions. What each strategy, command and deadline does is
// specified in the package documentation (doc.go).
func Plan(in Input) Decision {
	p := &planner{
		in:       in,
		next:     in.Status.clone(),
		replicas: in.Spec.ReplicaCount(),
		strategy: &in.Spec.Strategy,
	}
	p.command()
	p.retarget()
	if why := p.analysisVerdict(); why != "" {
		auto := p.strategy.AutoRollback
		phase := Degraded
		if auto {
			phase = RolledBack
		}
		p.event(Warning, "AnalysisFailed", "%s: %s", p.next.CanaryVersion, why)
		p.cancel(map[bool]string{true: "rolled-back", false: "aborted"}[auto], phase)
	}
	p.compute()
	if p.deadline() {
		p.compute()
	}
	p.finish()
	return p.decision
}

// planner is one run of Plan: the input, the status being built and what
// the current strategy wants.
type planner struct {
	in Input
	// next is the status being built, starting from Input.Status.
	next Status
	// replicas is spec.replicas (R in the package documentation).
	replicas int
	strategy *spec.Strategy

	decision Decision
	// want and split are what the strategy in force wants now (compute).
	want  traffic.Replicas
	split *traffic.Split
	// waiting is true while the release waits for a human or a timer,
	// not for instances (the progress deadline does not run).
	waiting bool
	// humanWait says why the release waits for a human ("" if it does
	// not): the phase is then Paused with this message.
	humanWait string
	// progressMark summarises what counts as progress; when it changes,
	// the progress-deadline clock restarts (Status.ProgressMark).
	progressMark string
	msg          string
	requeue      time.Duration
	// holdMsg, when set, holds the release Paused with this message: a
	// failed release hook, a frozen environment (hooks.go); frozenMsg is
	// the frozen environment's, kept across compute.
	holdMsg, frozenMsg string
}

func (s Status) clone() Status {
	out := s
	if s.Weights != nil {
		out.Weights = make(map[string]int, len(s.Weights))
		for k, v := range s.Weights {
			out.Weights[k] = v
		}
	}
	out.History = append([]HistoryEntry(nil), s.History...)
	if s.CanaryScale != nil {
		cs := *s.CanaryScale
		out.CanaryScale = &cs
	}
	return out
}

func (p *planner) obs(v string) Count { return p.configGated(v, p.in.Observed.Versions[v]) }

func (p *planner) event(t EventType, reason, format string, args ...any) {
	p.decision.Events = append(p.decision.Events, Event{Type: t, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (p *planner) wake(d time.Duration) {
	if d <= 0 {
		d = time.Millisecond
	}
	if p.requeue == 0 || d < p.requeue {
		p.requeue = d
	}
}

func (p *planner) record(version, outcome string) {
	p.next.History = append([]HistoryEntry{{Version: version, Outcome: outcome, At: p.in.Now}}, p.next.History...)
	if len(p.next.History) > MaxHistory {
		p.next.History = p.next.History[:MaxHistory]
	}
}

// retarget reacts to the desired version.
func (p *planner) retarget() {
	next := &p.next
	d := p.in.Spec.Version
	if next.RejectedVersion != "" && next.RejectedVersion != d {
		next.RejectedVersion = ""
	}
	target := d
	if next.RejectedVersion == d {
		target = next.StableVersion
		if next.CanaryVersion != "" && next.Rollback {
			target = next.CanaryVersion
		}
	}
	switch {
	case next.StableVersion == "" && p.in.Frozen != "":
		p.frozenHold(d)
	case next.StableVersion == "":
		next.StableVersion = d
		next.LastProgressAt = p.in.Now
		p.event(Normal, "Deploying", "first release of %s", d)
	case target == next.CanaryVersion:
		// carry on
	case target == next.StableVersion:
		if next.CanaryVersion != "" {
			v := next.CanaryVersion
			p.record(v, "superseded")
			next.CanaryVersion = ""
			p.resetRollout()
			p.event(Normal, "Superseded", "rollout of %s cancelled: desired version is the stable %s", v, d)
		}
	case p.in.Frozen != "" && !(target == next.PreviousVersion && p.in.Now.Before(next.ScaleDownAt)) && !p.in.RollbackIntent:
		p.frozenHold(target)
	default:
		rollback := target == next.PreviousVersion && p.in.Now.Before(next.ScaleDownAt)
		toRevision := !rollback && p.in.RollbackIntent && target == d && p.in.Spec.RollbackMode() == spec.RollbackFast
		p.start(target, rollback || toRevision)
		switch {
		case rollback:
			p.event(Normal, "Rollback", "%s is the previous version and still running: moving traffic back", target)
		case toRevision:
			p.event(Normal, "Rollback", "rolling back to %s (an earlier revision) without steps: traffic moves once it is ready", target)
		}
	}
}

// compute fills want, split, waiting and mark for the current status.
func (p *planner) compute() {
	p.want = traffic.Replicas{}
	p.split = nil
	p.waiting, p.humanWait, p.msg, p.holdMsg = false, "", "", p.frozenMsg
	switch {
	case p.next.StableVersion == "":
		// nothing released yet (a first release held by a freeze)
	case p.next.CanaryVersion == "":
		p.steady()
	case p.next.Rollback:
		p.rollBack()
	case p.strategy.Type == spec.Canary:
		p.canary()
	case p.strategy.Type == spec.BlueGreen:
		p.blueGreen()
	default:
		p.rolling()
	}
	p.configGate()     // config.go
	p.preReleaseGate() // hooks.go
	p.previous()
	for v := range p.in.Observed.Versions {
		if _, ok := p.want[v]; !ok {
			p.want[v] = 0
		}
	}
	p.guard()
}

func (p *planner) steady() {
	s := p.next.StableVersion
	p.want[s] = p.replicas
	c := p.obs(s)
	if c.Ready > 0 {
		p.split = splitOf(weight(s, 100))
	}
	p.progressMark = fmt.Sprintf("steady/%s/%d/%d", s, c.Ready, c.Total)
	if c.Ready < p.replicas {
		p.msg = fmt.Sprintf("%s: %d/%d ready", s, c.Ready, p.replicas)
	}
}

func (p *planner) confirmed(s *traffic.Split) bool {
	if !p.in.Observed.Router {
		return true
	}
	return s != nil && p.in.Observed.Split.Equal(*s)
}

// finalize makes the rolled-out version stable.
func (p *planner) finalize(outcome string) {
	next := &p.next
	d, old := next.CanaryVersion, next.StableVersion
	if next.Rollback && next.RejectedVersion != "" && next.RejectedVersion != d {
		outcome = "rolled-back"
	}
	next.StableVersion = d
	next.CanaryVersion = ""
	next.PreviousVersion = old
	switch {
	case !p.in.Observed.Router:
		// Traffic follows instance counts: a previous version kept
		// running would take its share of the users back. It goes to zero
		// now; scaleDownDelay needs a router (a rollback scales it up
		// again first).
		next.ScaleDownAt = time.Time{}
	case p.strategy.Type == spec.Rolling && !next.Rollback:
		next.ScaleDownAt = time.Time{}
	default:
		next.ScaleDownAt = p.in.Now.Add(p.strategy.EffectiveScaleDownDelay())
	}
	if next.RejectedVersion == d {
		next.RejectedVersion = ""
	}
	p.resetRollout()
	if outcome == "rolled-back" {
		next.Phase = RolledBack
		p.event(Warning, "RolledBack", "rolled back to %s; %s is not attempted again until the desired version changes", d, next.RejectedVersion)
	} else {
		kept := "scaled to zero"
		if !next.ScaleDownAt.IsZero() {
			kept = "kept for " + p.strategy.EffectiveScaleDownDelay().String()
		} else if !p.in.Observed.Router {
			kept = "scaled to zero (no traffic router: traffic follows instance counts)"
		}
		p.event(Normal, "Promoted", "%s promoted; %s %s", d, old, kept)
	}
	p.record(d, outcome)
	p.want = traffic.Replicas{}
	p.msg = ""
	p.steady()
}

// previous keeps the previous version running during scaleDownDelay. It
// needs a router: without one traffic follows instance counts, and the
// previous version would take users back (a status persisted with a
// ScaleDownAt by an earlier graylane is ignored then).
func (p *planner) previous() {
	pv := p.next.PreviousVersion
	if pv == "" || pv == p.next.StableVersion || pv == p.next.CanaryVersion || !p.in.Observed.Router {
		return
	}
	if p.in.Now.Before(p.next.ScaleDownAt) {
		p.want[pv] = p.replicas
		p.wake(p.next.ScaleDownAt.Sub(p.in.Now))
	}
}

// guard holds a version at its current size while the router still sends
// it traffic: a version only goes to zero after the split moved away.
func (p *planner) guard() {
	if !p.in.Observed.Router {
		return
	}
	cur := p.in.Observed.Split.Map()
	next := map[string]int{}
	if p.split != nil {
		next = p.split.Map()
	}
	for v, n := range p.want {
		if n == 0 && cur[v] > 0 && next[v] == 0 && p.obs(v).Total > 0 {
			p.want[v] = p.obs(v).Total
			p.wake(pollWhileConverging)
		}
	}
}

func (p *planner) finish() {
	next := &p.next
	d := p.in.Spec.Version
	switch {
	case next.CanaryVersion != "" && next.Paused:
		next.Phase, next.Message = Paused, "paused by operator: "+p.msg
	case p.holdMsg != "":
		next.Phase, next.Message = Paused, p.holdMsg
	case next.CanaryVersion != "" && p.humanWait != "":
		next.Phase, next.Message = Paused, p.humanWait
	case next.CanaryVersion != "" && next.DeadlineExceeded:
		next.Phase, next.Message = Degraded, "progress deadline exceeded: "+p.msg
	case next.CanaryVersion != "":
		next.Phase, next.Message = Progressing, p.msg
	case next.RejectedVersion != "" && next.RejectedVersion == d:
		if next.Phase != RolledBack && next.Phase != Degraded {
			next.Phase = RolledBack
		}
		{
			next.Message = fmt.Sprintf("%s was %s; %s is serving. Set a new version, or resume to retry",
				d, map[Phase]string{RolledBack: "rolled back", Degraded: "aborted"}[next.Phase], next.StableVersion)
		}
	case next.Paused:
		next.Phase, next.Message = Paused, "paused by operator"
	case next.DeadlineExceeded:
		next.Phase, next.Message = Degraded, "progress deadline exceeded: "+p.msg
	case p.in.Observed.ApplyError != "":
		// what runs may look right, but graylane could not put all of the
		// desired state in place: not Healthy
		next.Phase, next.Message = Degraded, "the desired state is not in place: "+p.in.Observed.ApplyError
	case p.msg != "" || !p.confirmed(p.split):
		next.Phase = Progressing
		if p.msg == "" {
			p.msg = "moving traffic to " + next.StableVersion
		}
		next.Message = p.msg
	default:
		next.Phase, next.Message = Healthy, ""
	}
	if (next.Phase == Progressing && !p.waiting) || (next.Phase == Degraded && next.CanaryVersion != "") {
		p.wake(pollWhileConverging)
	}
	next.Weights = nil
	next.Preview = ""
	if p.split != nil {
		next.Weights = p.split.Map()
		next.Preview = p.split.Preview
	}
	p.decision.Status = *next
	p.decision.Replicas = p.want
	if p.in.Observed.Router {
		p.decision.Split = p.split
	}
	p.decision.RequeueAfter = p.requeue
}
