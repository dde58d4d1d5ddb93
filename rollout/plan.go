package rollout

import (
	"fmt"
	"sort"
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
// idempotent actions.
//
// # Targets
//
// Let D be spec.version, S the stable version and R spec.replicas.
//
//   - first release (no stable yet): D becomes stable at once and is scaled
//     to R; no strategy runs.
//   - D == S: nothing to roll out; a rollout in progress is cancelled.
//   - D is a new version: a rollout of D starts with the spec's strategy,
//     superseding any rollout in progress (whose version is taken out of
//     traffic, then scaled to zero). A paused, degraded or rolled-back
//     release is superseded the same way.
//   - D is the previous version and the previous version is still within
//     its scaleDownDelay: a fast rollout: traffic moves back as soon as the
//     previous version is ready (it usually already is); no steps run.
//   - D was rejected (aborted or rolled back): it is left alone until D
//     changes or resume retries it.
//
// # Canary
//
// At step i the canary weight w is the last setWeight in steps[0..i] and
// the canary runs ceil(R*w/100) instances (at least 1 when w > 0), unless a
// setCanaryScale in steps[0..i] says otherwise. With a router the stable
// version keeps R instances, so an abort is instant; without one traffic
// follows instance counts and the stable version shrinks to R - canary.
// The weight moves to w only once the canary's instances are ready; the
// step is complete once the router confirms it. Example, R = 4, steps
// [setWeight 25, pause 5s, setWeight 50, pause {}, setWeight 100]:
//
//	step 0  canary 1 instance; when ready: weights v2 25 / v1 75
//	step 1  wait 5s after step 0 completed
//	step 2  canary 2 instances; when ready: v2 50 / v1 50
//	step 3  Paused until promote (or resume)
//	step 4  canary 4 instances; v2 100
//	done    promoted: v2 stable; v1 keeps 4 instances at weight 0 for
//	        scaleDownDelay, then is scaled to zero
//
// # Rolling
//
// With s = maxSurge (rounded up, default 25%) and u = maxUnavailable
// (rounded down, default 25%) of R, as Kubernetes does: the new version
// grows to min(R, R+s-old) where old counts every instance of other
// versions; old instances are removed while ready instances stay at or
// above R-u (unready old instances first). With R=4, s=1, u=0: 4 old +
// 1 new; when the new one is ready, 3 old; then 3 old + 2 new; ... 0 old +
// 4 new. Traffic follows ready instances.
//
// # Blue-green
//
// The new version is brought up at R beside the stable one and is reachable
// only as a preview (header). Once all R are ready it is switched to 100% at
// once (after autoPromotionDelay), or, with autoPromotionEnabled false,
// when promoted. The old version then waits scaleDownDelay as for a canary.
//
// # Commands
//
//   - promote: skip the current canary step (continue a pause), or switch a
//     blue-green now.
//   - promote-full: skip every remaining step: scale the new version to R
//     and send it all traffic.
//   - pause / resume: hold the release where it is / continue it. resume
//     also continues a pause step and retries a rejected version.
//   - abort: send all traffic to the stable version and scale the new one
//     to zero; phase Degraded.
//   - rollback: during a rollout, as abort but phase RolledBack; after a
//     promotion, go back to the previous version without running steps
//     (only traffic moves while the previous version is within
//     scaleDownDelay).
//
// # Config gate
//
// With Input.Config (the release has bound config, config.go), instances
// of a version are started only once its config is placed, count as ready
// only once they report having loaded it, and the release is Healthy only
// once every target's stable location holds the stable version's config.
//
// # Progress deadline
//
// When nothing progresses (no step completes, no instance of the version
// being rolled out changes state) for strategy.progressDeadline, outside
// pauses, the release is Degraded; with autoRollback it is rolled back.
// A backend with a deadline of its own can say so first: when
// Observed.Stalled names the version being rolled out (a Kubernetes
// Deployment reporting ProgressDeadlineExceeded, whose
// progressDeadlineSeconds graylane sets from the same spec field), the
// deadline counts as passed at once. Example: canary v2 at step 1, its
// Deployment reports ProgressDeadlineExceeded 10 s before graylane's own
// clock would: the decision is RolledBack (autoRollback) in that plan,
// with a ProgressDeadlineExceeded event naming the backend's reason.
func Plan(in Input) Decision {
	p := &planner{
		in:  in,
		st:  in.Status.clone(),
		R:   in.Spec.ReplicaCount(),
		str: &in.Spec.Strategy,
	}
	p.command()
	p.retarget()
	if why := p.analysisVerdict(); why != "" {
		auto := p.str.AutoRollback
		phase := Degraded
		if auto {
			phase = RolledBack
		}
		p.event(Warning, "AnalysisFailed", "%s: %s", p.st.CanaryVersion, why)
		p.cancel(map[bool]string{true: "rolled-back", false: "aborted"}[auto], phase)
	}
	p.compute()
	if p.deadline() {
		p.compute()
	}
	p.finish()
	return p.dec
}

type planner struct {
	in  Input
	st  Status
	R   int
	str *spec.Strategy

	dec     Decision
	want    traffic.Replicas
	split   *traffic.Split
	waiting bool   // waiting for a human or a timer, not for instances
	human   string // why we wait for a human, "" if not
	mark    string // progress mark
	msg     string
	requeue time.Duration
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
	p.dec.Events = append(p.dec.Events, Event{Type: t, Reason: reason, Message: fmt.Sprintf(format, args...)})
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
	p.st.History = append([]HistoryEntry{{Version: version, Outcome: outcome, At: p.in.Now}}, p.st.History...)
	if len(p.st.History) > MaxHistory {
		p.st.History = p.st.History[:MaxHistory]
	}
}

// command applies the operator's command to the status.
func (p *planner) command() {
	st := &p.st
	reject := func(format string, args ...any) {
		p.dec.CommandErr = fmt.Sprintf(format, args...)
		p.event(Warning, "CommandRejected", "%s: %s", p.in.Command, p.dec.CommandErr)
	}
	inProgress := st.CanaryVersion != ""
	switch p.in.Command {
	case CmdNone:
	case CmdPause:
		if st.Paused {
			reject("already paused")
			return
		}
		st.Paused = true
		p.event(Normal, "Paused", "paused by operator")
	case CmdResume:
		switch {
		case st.Paused:
			st.Paused = false
			p.event(Normal, "Resumed", "resumed by operator")
		case inProgress && p.atIndefinitePause():
			p.advance("resumed")
		case inProgress && p.str.Type == spec.BlueGreen && !st.Fast && st.Step >= 1 && !p.str.AutoPromote():
			st.PromoteFull = true
			p.event(Normal, "Promote", "blue-green switch requested")
		case st.RejectedVersion != "" && st.RejectedVersion == p.in.Spec.Version:
			p.event(Normal, "Retry", "retrying %s", st.RejectedVersion)
			st.RejectedVersion = ""
		default:
			reject("nothing is paused, waiting or rejected")
		}
	case CmdPromote:
		switch {
		case !inProgress:
			reject("no rollout in progress")
		case st.Fast:
			reject("a rollback is in progress; it has no steps")
		case p.str.Type == spec.Canary:
			if st.Step >= len(p.str.Steps) {
				reject("already promoting")
				return
			}
			st.Paused = false
			p.advance("promoted by operator")
		case p.str.Type == spec.BlueGreen:
			st.Paused = false
			st.PromoteFull = true
			p.event(Normal, "Promote", "blue-green switch requested")
		default:
			reject("a rolling update has no steps; use promote-full to finish it at once")
		}
	case CmdPromoteFull:
		switch {
		case !inProgress:
			reject("no rollout in progress")
		case p.str.Type == spec.Rolling && !st.Fast:
			st.PromoteFull = true
			st.Paused = false
			p.event(Normal, "PromoteFull", "finishing rolling update at once")
		default:
			st.PromoteFull = true
			st.Paused = false
			p.event(Normal, "PromoteFull", "skipping remaining steps of %s", st.CanaryVersion)
		}
	case CmdAbort:
		if !inProgress {
			reject("no rollout in progress")
			return
		}
		p.cancel("aborted", Degraded)
		st.Message = "aborted by operator"
	case CmdRollback:
		switch {
		case inProgress && !st.Fast:
			p.cancel("rolled-back", RolledBack)
			st.Message = "rolled back by operator"
		case !inProgress && st.PreviousVersion != "" && st.PreviousVersion != st.StableVersion:
			from := st.StableVersion
			st.RejectedVersion = p.in.Spec.Version
			p.start(st.PreviousVersion, true)
			p.event(Normal, "Rollback", "rolling back from %s to %s", from, st.PreviousVersion)
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
	v := p.st.CanaryVersion
	p.st.RejectedVersion = v
	p.st.CanaryVersion = ""
	p.resetRollout()
	p.st.Phase = phase
	p.record(v, outcome)
	p.event(Warning, map[Phase]string{Degraded: "Aborted", RolledBack: "RolledBack"}[phase], "%s %s; %s keeps serving", v, outcome, p.st.StableVersion)
}

func (p *planner) resetRollout() {
	p.st.Step = 0
	p.st.StepStartedAt = time.Time{}
	p.st.PromoteFull = false
	p.st.Fast = false
	p.st.CanaryScale = nil
	p.st.DeadlineExceeded = false
}

// start begins a rollout of v.
func (p *planner) start(v string, fast bool) {
	if old := p.st.CanaryVersion; old != "" && old != v {
		p.record(old, "superseded")
		p.event(Normal, "Superseded", "rollout of %s superseded by %s", old, v)
	}
	p.st.CanaryVersion = v
	p.resetRollout()
	p.st.Fast = fast
	p.st.StepStartedAt = p.in.Now
	p.st.LastProgressAt = p.in.Now
	p.st.ProgressMark = ""
	if !fast {
		p.event(Normal, "RolloutStarted", "rolling out %s over %s (%s)", v, p.st.StableVersion, p.str.Type)
	}
}

// retarget reacts to the desired version.
func (p *planner) retarget() {
	st := &p.st
	d := p.in.Spec.Version
	if st.RejectedVersion != "" && st.RejectedVersion != d {
		st.RejectedVersion = ""
	}
	target := d
	if st.RejectedVersion == d {
		target = st.StableVersion
		if st.CanaryVersion != "" && st.Fast {
			target = st.CanaryVersion
		}
	}
	switch {
	case st.StableVersion == "":
		st.StableVersion = d
		st.LastProgressAt = p.in.Now
		p.event(Normal, "Deploying", "first release of %s", d)
	case target == st.CanaryVersion:
		// carry on
	case target == st.StableVersion:
		if st.CanaryVersion != "" {
			v := st.CanaryVersion
			p.record(v, "superseded")
			st.CanaryVersion = ""
			p.resetRollout()
			p.event(Normal, "Superseded", "rollout of %s cancelled: desired version is the stable %s", v, d)
		}
	default:
		fast := target == st.PreviousVersion && p.in.Now.Before(st.ScaleDownAt)
		p.start(target, fast)
		if fast {
			p.event(Normal, "Rollback", "%s is the previous version and still running: moving traffic back", target)
		}
	}
}

// compute fills want, split, waiting and mark for the current status.
func (p *planner) compute() {
	p.want = traffic.Replicas{}
	p.split = nil
	p.waiting, p.human, p.msg = false, "", ""
	switch {
	case p.st.CanaryVersion == "":
		p.steady()
	case p.st.Fast:
		p.fast()
	case p.str.Type == spec.Canary:
		p.canary()
	case p.str.Type == spec.BlueGreen:
		p.blueGreen()
	default:
		p.rolling()
	}
	p.configGate() // config.go
	p.previous()
	for v := range p.in.Observed.Versions {
		if _, ok := p.want[v]; !ok {
			p.want[v] = 0
		}
	}
	p.guard()
}

func (p *planner) steady() {
	s := p.st.StableVersion
	p.want[s] = p.R
	c := p.obs(s)
	if c.Ready > 0 {
		p.split = split(vw(s, 100))
	}
	p.mark = fmt.Sprintf("steady/%s/%d/%d", s, c.Ready, c.Total)
	if c.Ready < p.R {
		p.msg = fmt.Sprintf("%s: %d/%d ready", s, c.Ready, p.R)
	}
}

// weightAt returns the canary weight in force at step i (the last setWeight
// in steps[0..i]); i >= len(steps) means 100.
func (p *planner) weightAt(i int) int {
	steps := p.str.Steps
	if i >= len(steps) {
		return 100
	}
	w := 0
	for j := 0; j <= i && j < len(steps); j++ {
		if steps[j].SetWeight != nil {
			w = *steps[j].SetWeight
		}
	}
	return w
}

// canaryReplicas returns the canary's instance count at step i.
func (p *planner) canaryReplicas(i int) int {
	steps := p.str.Steps
	if i >= len(steps) {
		return p.R
	}
	var cs *spec.CanaryScale
	for j := 0; j <= i; j++ {
		if steps[j].SetCanaryScale != nil {
			cs = steps[j].SetCanaryScale
			if cs.MatchTrafficWeight {
				cs = nil
			}
		}
	}
	if cs != nil && cs.Replicas != nil {
		return min(*cs.Replicas, p.R)
	}
	w := p.weightAt(i)
	if cs != nil && cs.Weight != nil {
		w = *cs.Weight
	}
	return scaleFor(p.R, w)
}

// scaleFor is ceil(r*w/100), at least 1 when w > 0.
func scaleFor(r, w int) int {
	if w <= 0 {
		return 0
	}
	return max(1, (r*w+99)/100)
}

func (p *planner) confirmed(s *traffic.Split) bool {
	if !p.in.Observed.Router {
		return true
	}
	return s != nil && p.in.Observed.Split.Equal(*s)
}

func (p *planner) atIndefinitePause() bool {
	i := p.st.Step
	return p.str.Type == spec.Canary && i < len(p.str.Steps) &&
		p.str.Steps[i].Pause != nil && p.str.Steps[i].Pause.Duration == nil
}

func (p *planner) advance(why string) {
	p.st.Step++
	p.st.StepStartedAt = p.in.Now
	n := len(p.str.Steps)
	if p.st.Step >= n {
		p.event(Normal, "StepCompleted", "step %d/%d of %s done (%s); promoting", p.st.Step, n, p.st.CanaryVersion, why)
	} else {
		p.event(Normal, "StepCompleted", "step %d/%d of %s done (%s)", p.st.Step, n, p.st.CanaryVersion, why)
	}
}

func (p *planner) canary() {
	st := &p.st
	d, s := st.CanaryVersion, st.StableVersion
	n := len(p.str.Steps)
	if st.PromoteFull {
		st.Step = max(st.Step, n)
	}
	for guard := 0; guard <= n+1; guard++ {
		i := st.Step
		c := p.obs(d)
		if i >= n {
			p.promote()
			return
		}
		step := p.str.Steps[i]
		want := p.canaryReplicas(i)
		p.want[d] = want
		p.want[s] = p.stableBeside(want, c.Ready)
		w := p.weightAt(i)
		ready := c.Ready >= want
		applied := p.weightAt(i - 1)
		if i == 0 {
			applied = 0
		}
		if ready {
			applied = w
		}
		if applied > 0 && c.Ready == 0 {
			applied = 0
		}
		if st.Paused {
			// a paused release holds its traffic where it was
			applied = min(applied, p.in.Status.Weights[d])
		}
		p.split = split(vw(d, applied), vw(s, 100-applied))
		p.mark = fmt.Sprintf("canary/%s/%d/%d/%d", d, i, c.Ready, c.Total)
		p.msg = fmt.Sprintf("canary %s step %d/%d: weight %d%%, %d/%d canary ready", d, i+1, n, applied, c.Ready, want)
		if st.Paused {
			return
		}
		done := false
		switch {
		case step.SetWeight != nil, step.SetCanaryScale != nil:
			done = ready && p.confirmed(p.split)
		case step.Analysis != nil:
			ok, progress := p.analysisStep(step.Analysis)
			p.mark = fmt.Sprintf("canary/%s/%d/analysis/%s", d, i, progress)
			p.msg = fmt.Sprintf("canary %s step %d/%d: analysis %s, weight %d%%", d, i+1, n, progress, applied)
			done = ok
		case step.Pause != nil && step.Pause.Duration == nil:
			p.waiting = true
			p.human = fmt.Sprintf("paused at step %d/%d: promote or resume to continue", i+1, n)
			p.mark = fmt.Sprintf("canary/%s/%d/pause", d, i)
			return
		case step.Pause != nil:
			until := st.StepStartedAt.Add(step.Pause.Duration.Duration)
			p.waiting = true
			p.mark = fmt.Sprintf("canary/%s/%d/pause", d, i)
			if p.in.Now.Before(until) {
				left := until.Sub(p.in.Now)
				p.wake(left)
				p.msg = fmt.Sprintf("canary %s step %d/%d: pausing, %s left, weight %d%%", d, i+1, n, left.Round(time.Second), applied)
				return
			}
			done = true
		}
		if !done {
			return
		}
		p.waiting = false
		p.advance(stepName(step))
	}
}

func stepName(s spec.Step) string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d", *s.SetWeight)
	case s.SetCanaryScale != nil:
		return "setCanaryScale"
	case s.Analysis != nil:
		return "analysis"
	case s.Pause != nil && s.Pause.Duration != nil:
		return "pause " + s.Pause.Duration.String()
	default:
		return "pause"
	}
}

// stableBeside is the stable version's instance count next to a canary of
// canary instances: all of R with a router, else R minus the ready canary
// instances (traffic follows instance counts).
func (p *planner) stableBeside(canary, canaryReady int) int {
	if p.in.Observed.Router {
		return p.R
	}
	return max(0, p.R-min(canary, canaryReady))
}

// promote scales the new version to R and moves all traffic to it.
func (p *planner) promote() {
	st := &p.st
	d, s := st.CanaryVersion, st.StableVersion
	c := p.obs(d)
	p.want[d] = p.R
	p.want[s] = p.stableBeside(p.R, c.Ready)
	p.mark = fmt.Sprintf("promote/%s/%d/%d", d, c.Ready, c.Total)
	if c.Ready >= p.R {
		p.split = split(vw(d, 100))
		if p.confirmed(p.split) {
			p.finalize("promoted")
			return
		}
	} else {
		// keep the weight already given to the new version until all of it
		// is ready
		w := 0
		if c.Ready > 0 {
			w = min(st.Weights[d], 100)
		}
		p.split = split(vw(d, w), vw(s, 100-w))
	}
	p.msg = fmt.Sprintf("promoting %s: %d/%d ready", d, c.Ready, p.R)
}

// finalize makes the rolled-out version stable.
func (p *planner) finalize(outcome string) {
	st := &p.st
	d, old := st.CanaryVersion, st.StableVersion
	if st.Fast && st.RejectedVersion != "" && st.RejectedVersion != d {
		outcome = "rolled-back"
	}
	st.StableVersion = d
	st.CanaryVersion = ""
	st.PreviousVersion = old
	if p.str.Type == spec.Rolling && !st.Fast {
		st.ScaleDownAt = time.Time{}
	} else {
		st.ScaleDownAt = p.in.Now.Add(p.str.EffectiveScaleDownDelay())
	}
	if st.RejectedVersion == d {
		st.RejectedVersion = ""
	}
	p.resetRollout()
	if outcome == "rolled-back" {
		st.Phase = RolledBack
		p.event(Warning, "RolledBack", "rolled back to %s; %s is not attempted again until the desired version changes", d, st.RejectedVersion)
	} else {
		p.event(Normal, "Promoted", "%s promoted; %s kept for %s", d, old, p.str.EffectiveScaleDownDelay())
	}
	p.record(d, outcome)
	p.want = traffic.Replicas{}
	p.msg = ""
	p.steady()
}

func (p *planner) fast() {
	st := &p.st
	d, s := st.CanaryVersion, st.StableVersion
	c := p.obs(d)
	p.want[d] = p.R
	p.want[s] = p.R
	p.mark = fmt.Sprintf("fast/%s/%d/%d", d, c.Ready, c.Total)
	if c.Ready >= p.R {
		p.split = split(vw(d, 100))
		if p.confirmed(p.split) {
			p.finalize("promoted")
			return
		}
	} else if p.obs(s).Ready > 0 {
		p.split = split(vw(s, 100))
	}
	p.msg = fmt.Sprintf("moving traffic back to %s (its instances are still up, no steps): %d/%d ready", d, c.Ready, p.R)
}

func (p *planner) blueGreen() {
	st := &p.st
	d, s := st.CanaryVersion, st.StableVersion
	c := p.obs(d)
	p.want[d] = p.R
	p.want[s] = p.R
	ready := c.Ready >= p.R
	if p.obs(s).Ready > 0 {
		p.split = split(vw(s, 100))
	}
	if c.Ready > 0 && p.split != nil {
		p.split.Preview = d
	}
	p.mark = fmt.Sprintf("bluegreen/%s/%d/%d/%d", d, st.Step, c.Ready, c.Total)
	p.msg = fmt.Sprintf("blue-green %s: %d/%d ready for preview", d, c.Ready, p.R)
	if st.Step == 0 && ready {
		st.Step = 1
		st.StepStartedAt = p.in.Now
		p.event(Normal, "PreviewReady", "%s ready for preview (header X-Graylane-Version: %s)", d, d)
	}
	if st.Step < 1 || st.Paused {
		return
	}
	switchNow := st.PromoteFull
	if !switchNow {
		if !p.str.AutoPromote() {
			p.waiting = true
			p.human = fmt.Sprintf("%s is ready for preview: promote to switch traffic", d)
			p.mark = fmt.Sprintf("bluegreen/%s/preview", d)
			return
		}
		delay := time.Duration(0)
		if p.str.AutoPromotionDelay != nil {
			delay = p.str.AutoPromotionDelay.Duration
		}
		until := st.StepStartedAt.Add(delay)
		if p.in.Now.Before(until) {
			p.waiting = true
			p.mark = fmt.Sprintf("bluegreen/%s/preview", d)
			p.wake(until.Sub(p.in.Now))
			p.msg = fmt.Sprintf("blue-green %s: previewing, switching in %s", d, until.Sub(p.in.Now).Round(time.Second))
			return
		}
	}
	if !ready {
		return
	}
	p.split = split(vw(d, 100))
	if p.confirmed(p.split) {
		p.finalize("promoted")
		return
	}
	p.msg = fmt.Sprintf("blue-green %s: switching traffic", d)
}

func (p *planner) rolling() {
	st := &p.st
	d, s := st.CanaryVersion, st.StableVersion
	R := p.R
	surge := p.str.MaxSurge.Scaled(R, true, (R*25+99)/100)
	unavail := p.str.MaxUnavailable.Scaled(R, false, R*25/100)
	if st.PromoteFull {
		surge, unavail = R, R
	}
	if surge == 0 && unavail == 0 {
		surge = 1
	}
	c := p.obs(d)
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
	var ws []traffic.VersionWeight
	if r := min(c.Ready, newWant); r > 0 {
		ws = append(ws, vw(d, r))
	}
	for i := len(old) - 1; i >= 0; i-- {
		v := old[i]
		if r := min(p.obs(v).Ready, p.want[v]); r > 0 {
			ws = append(ws, vw(v, r))
		}
	}
	if len(ws) > 0 {
		p.split = proportional(ws)
	}
	p.mark = fmt.Sprintf("rolling/%s/%d/%d/%d/%d", d, c.Ready, c.Total, oldReady, oldTotal)
	p.msg = fmt.Sprintf("rolling %s: %d/%d new ready, %d old left", d, c.Ready, R, oldTotal)
	if c.Ready >= R && oldTotal == 0 {
		p.finalize("promoted")
	}
}

// previous keeps the previous version running during scaleDownDelay.
func (p *planner) previous() {
	pv := p.st.PreviousVersion
	if pv == "" || pv == p.st.StableVersion || pv == p.st.CanaryVersion {
		return
	}
	if p.in.Now.Before(p.st.ScaleDownAt) {
		p.want[pv] = p.R
		p.wake(p.st.ScaleDownAt.Sub(p.in.Now))
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

// deadline applies the progress deadline; it reports whether the status
// changed enough that compute must run again.
func (p *planner) deadline() bool {
	st := &p.st
	if p.mark != st.ProgressMark {
		st.ProgressMark = p.mark
		st.LastProgressAt = p.in.Now
		st.DeadlineExceeded = false
	}
	converging := st.CanaryVersion != "" || p.obs(st.StableVersion).Ready < p.R
	if p.waiting || st.Paused || !converging {
		return false
	}
	limit := p.str.EffectiveProgressDeadline()
	due := st.LastProgressAt.Add(limit)
	target := st.CanaryVersion
	if target == "" {
		target = st.StableVersion
	}
	stalled := p.in.Observed.Stalled[target]
	if p.in.Now.Before(due) && stalled == "" {
		p.wake(due.Sub(p.in.Now))
		return false
	}
	if !st.DeadlineExceeded {
		st.DeadlineExceeded = true
		if stalled != "" {
			p.event(Warning, "ProgressDeadlineExceeded", "the backend gave up on %s: %s", target, stalled)
		} else {
			p.event(Warning, "ProgressDeadlineExceeded", "no progress for %s: %s", limit, p.msg)
		}
	}
	if p.str.AutoRollback && st.CanaryVersion != "" && !st.Fast {
		p.cancel("rolled-back", RolledBack)
		st.Message = fmt.Sprintf("progress deadline %s exceeded; rolled back", limit)
		return true
	}
	return false
}

func (p *planner) finish() {
	st := &p.st
	d := p.in.Spec.Version
	switch {
	case st.CanaryVersion != "" && st.Paused:
		st.Phase, st.Message = Paused, "paused by operator: "+p.msg
	case st.CanaryVersion != "" && p.human != "":
		st.Phase, st.Message = Paused, p.human
	case st.CanaryVersion != "" && st.DeadlineExceeded:
		st.Phase, st.Message = Degraded, "progress deadline exceeded: "+p.msg
	case st.CanaryVersion != "":
		st.Phase, st.Message = Progressing, p.msg
	case st.RejectedVersion != "" && st.RejectedVersion == d:
		if st.Phase != RolledBack && st.Phase != Degraded {
			st.Phase = RolledBack
		}
		{
			st.Message = fmt.Sprintf("%s was %s; %s is serving. Set a new version, or resume to retry",
				d, map[Phase]string{RolledBack: "rolled back", Degraded: "aborted"}[st.Phase], st.StableVersion)
		}
	case st.Paused:
		st.Phase, st.Message = Paused, "paused by operator"
	case st.DeadlineExceeded:
		st.Phase, st.Message = Degraded, "progress deadline exceeded: "+p.msg
	case p.msg != "" || !p.confirmed(p.split):
		st.Phase = Progressing
		if p.msg == "" {
			p.msg = "moving traffic to " + st.StableVersion
		}
		st.Message = p.msg
	default:
		st.Phase, st.Message = Healthy, ""
	}
	if (st.Phase == Progressing && !p.waiting) || (st.Phase == Degraded && st.CanaryVersion != "") {
		p.wake(pollWhileConverging)
	}
	st.Weights = nil
	st.Preview = ""
	if p.split != nil {
		st.Weights = p.split.Map()
		st.Preview = p.split.Preview
	}
	p.dec.Status = *st
	p.dec.Replicas = p.want
	if p.in.Observed.Router {
		p.dec.Split = p.split
	}
	p.dec.RequeueAfter = p.requeue
}

func vw(v string, w int) traffic.VersionWeight { return traffic.VersionWeight{Version: v, Weight: w} }

// split builds a Split from weights, dropping zero entries (the first entry
// stays first: it is the newest version).
func split(ws ...traffic.VersionWeight) *traffic.Split {
	s := &traffic.Split{}
	for _, w := range ws {
		if w.Weight > 0 {
			s.Weights = append(s.Weights, w)
		}
	}
	return s
}

// proportional turns instance counts into percentages summing to 100 by the
// largest-remainder method (ties to the earlier entry).
func proportional(counts []traffic.VersionWeight) *traffic.Split {
	total := 0
	for _, c := range counts {
		total += c.Weight
	}
	out := make([]traffic.VersionWeight, len(counts))
	rem := make([]int, len(counts))
	sum := 0
	for i, c := range counts {
		out[i] = vw(c.Version, c.Weight*100/total)
		rem[i] = c.Weight * 100 % total
		sum += out[i].Weight
	}
	for sum < 100 {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		out[best].Weight++
		rem[best] = -1
		sum++
	}
	return split(out...)
}
