package rollout

import (
	"fmt"
	"sort"
	"strings"

	"github.com/graylane/graylane/spec"
)

// tail returns the number of consecutive runs at the end of r with the
// given outcome, counting only runs at or after since (zero: all).
func tail(r CheckResult, ok bool, since int64) (n int, last CheckRun) {
	for i := len(r.Runs) - 1; i >= 0; i-- {
		run := r.Runs[i]
		if run.At.UnixNano() < since || run.OK != ok {
			break
		}
		if n == 0 {
			last = run
		}
		n++
	}
	return n, last
}

// analysisVerdict checks the analysis of the version being rolled out. It
// returns a reason when a check failed more than failureLimit times in a
// row and that check guards the current moment: always when analysis runs
// in the background, otherwise only during an analysis step that lists it
// (counting runs since the step began).
func (p *planner) analysisVerdict() string {
	a := p.strategy.Analysis
	next := &p.next
	if a == nil || next.CanaryVersion == "" || next.Rollback || next.Paused {
		return ""
	}
	var inStep map[string]bool
	if step := p.currentStep(); step != nil && step.Analysis != nil {
		inStep = p.stepChecks(step.Analysis)
	}
	limit := a.EffectiveFailureLimit()
	names := make([]string, 0, len(a.Checks))
	for _, c := range a.Checks {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	for _, name := range names {
		r, ok := p.in.Checks[name]
		if !ok || r.Version != next.CanaryVersion {
			continue
		}
		var since int64
		switch {
		case a.InBackground():
		case inStep[name]:
			since = next.StepStartedAt.UnixNano()
		default:
			continue
		}
		if n, last := tail(r, false, since); n > limit {
			return fmt.Sprintf("check %s failed %d time(s) in a row (failureLimit %d): %s", name, n, limit, last.Message)
		}
	}
	return ""
}

func (p *planner) currentStep() *spec.Step {
	if p.strategy.Type != spec.Canary || p.next.Step >= len(p.strategy.Steps) {
		return nil
	}
	return &p.strategy.Steps[p.next.Step]
}

func (p *planner) stepChecks(sa *spec.StepAnalysis) map[string]bool {
	m := map[string]bool{}
	if len(sa.Checks) == 0 && p.strategy.Analysis != nil {
		for _, c := range p.strategy.Analysis.Checks {
			m[c.Name] = true
		}
	}
	for _, n := range sa.Checks {
		m[n] = true
	}
	return m
}

// analysisStep reports whether an analysis step is complete, and its
// progress ("error-rate 2/3, smoke 3/3").
func (p *planner) analysisStep(sa *spec.StepAnalysis) (bool, string) {
	count := sa.Count
	if count <= 0 {
		count = 1
	}
	names := make([]string, 0)
	for n := range p.stepChecks(sa) {
		names = append(names, n)
	}
	sort.Strings(names)
	done := true
	var parts []string
	for _, name := range names {
		r := p.in.Checks[name]
		n := 0
		if r.Version == p.next.CanaryVersion {
			n, _ = tail(r, true, p.next.StepStartedAt.UnixNano())
		}
		if n < count {
			done = false
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", name, min(n, count), count))
	}
	return done, strings.Join(parts, ", ")
}
