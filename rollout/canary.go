package rollout

import (
	"fmt"
	"time"

	"github.com/graylane/graylane/spec"
)

// weightAt returns the canary weight in force at step i (the last setWeight
// in steps[0..i]); i >= len(steps) means 100.
func (p *planner) weightAt(i int) int {
	steps := p.strategy.Steps
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
	steps := p.strategy.Steps
	if i >= len(steps) {
		return p.replicas
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
		return min(*cs.Replicas, p.replicas)
	}
	w := p.weightAt(i)
	if cs != nil && cs.Weight != nil {
		w = *cs.Weight
	}
	return scaleFor(p.replicas, w)
}

func (p *planner) atIndefinitePause() bool {
	i := p.next.Step
	return p.strategy.Type == spec.Canary && i < len(p.strategy.Steps) &&
		p.strategy.Steps[i].Pause != nil && p.strategy.Steps[i].Pause.Duration == nil
}

func (p *planner) advance(why string) {
	p.next.Step++
	p.next.StepStartedAt = p.in.Now
	n := len(p.strategy.Steps)
	if p.next.Step >= n {
		p.event(Normal, "StepCompleted", "step %d/%d of %s done (%s); promoting", p.next.Step, n, p.next.CanaryVersion, why)
	} else {
		p.event(Normal, "StepCompleted", "step %d/%d of %s done (%s)", p.next.Step, n, p.next.CanaryVersion, why)
	}
}

// canary runs the canary steps from Status.Step as far as the observed
// state allows (package documentation, "Canary"): scale, wait for ready
// instances, move the weight, wait for the router, pause, analyse.
func (p *planner) canary() {
	next := &p.next
	d, s := next.CanaryVersion, next.StableVersion
	n := len(p.strategy.Steps)
	if next.PromoteFull {
		next.Step = max(next.Step, n)
	}
	for guard := 0; guard <= n+1; guard++ {
		i := next.Step
		c := p.obs(d)
		if p.atConfirm(i) && p.confirmHeld(d) { // hooks.go
			next.Step = min(i, p.confirmAt()) // promote-full waits at the guarded step too
			p.holdBeforeConfirm()
			return
		}
		if i >= n {
			p.promote()
			return
		}
		step := p.strategy.Steps[i]
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
		if next.Paused {
			// a paused release holds its traffic where it was
			applied = min(applied, p.in.Status.Weights[d])
		}
		p.split = splitOf(weight(d, applied), weight(s, 100-applied))
		p.progressMark = fmt.Sprintf("canary/%s/%d/%d/%d", d, i, c.Ready, c.Total)
		p.msg = fmt.Sprintf("canary %s step %d/%d: weight %d%%, %d/%d canary ready", d, i+1, n, applied, c.Ready, want)
		if next.Paused {
			return
		}
		done := false
		switch {
		case step.SetWeight != nil, step.SetCanaryScale != nil:
			done = ready && p.confirmed(p.split)
		case step.Analysis != nil:
			ok, progress := p.analysisStep(step.Analysis)
			p.progressMark = fmt.Sprintf("canary/%s/%d/analysis/%s", d, i, progress)
			p.msg = fmt.Sprintf("canary %s step %d/%d: analysis %s, weight %d%%", d, i+1, n, progress, applied)
			done = ok
		case step.Pause != nil && step.Pause.Duration == nil:
			p.waiting = true
			p.humanWait = fmt.Sprintf("paused at step %d/%d: promote or resume to continue", i+1, n)
			p.progressMark = fmt.Sprintf("canary/%s/%d/pause", d, i)
			return
		case step.Pause != nil:
			until := next.StepStartedAt.Add(step.Pause.Duration.Duration)
			p.waiting = true
			p.progressMark = fmt.Sprintf("canary/%s/%d/pause", d, i)
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
		return p.replicas
	}
	return max(0, p.replicas-min(canary, canaryReady))
}

// promote scales the new version to R and moves all traffic to it.
func (p *planner) promote() {
	next := &p.next
	d, s := next.CanaryVersion, next.StableVersion
	c := p.obs(d)
	p.want[d] = p.replicas
	p.want[s] = p.stableBeside(p.replicas, c.Ready)
	p.progressMark = fmt.Sprintf("promote/%s/%d/%d", d, c.Ready, c.Total)
	if c.Ready >= p.replicas {
		p.split = splitOf(weight(d, 100))
		if p.confirmed(p.split) {
			p.finalize("promoted")
			return
		}
	} else {
		// keep the weight already given to the new version until all of it
		// is ready
		w := 0
		if c.Ready > 0 {
			w = min(next.Weights[d], 100)
		}
		p.split = splitOf(weight(d, w), weight(s, 100-w))
	}
	p.msg = fmt.Sprintf("promoting %s: %d/%d ready", d, c.Ready, p.replicas)
}
