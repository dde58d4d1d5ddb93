package rollout

import (
	"fmt"
	"time"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// SimStep is one distinct state of a simulated release: what Plan would
// ask for at that point, in a world where every instance it asks for
// becomes ready at once, the router confirms every split, timed pauses
// run out, analysis checks pass and a human promotes every pause.
type SimStep struct {
	// After is how long into the release this state is reached (timed
	// pauses and delays only: instances are assumed ready at once).
	After time.Duration `json:"after"`
	Phase Phase         `json:"phase"`
	// Step is the canary step index (see Status.Step).
	Step int `json:"step"`
	// Replicas is the instance count per version Plan asks for.
	Replicas traffic.Replicas `json:"replicas"`
	// Weights is the traffic split, percent per version.
	Weights map[string]int `json:"weights,omitempty"`
	// Waits says what the release waits for here ("" when nothing).
	Waits   string   `json:"waits,omitempty"`
	Message string   `json:"message,omitempty"`
	Events  []string `json:"events,omitempty"`
}

// maxSimPasses bounds a simulation.
const maxSimPasses = 400

// Simulate runs Plan from status and what runs now (observed) until the
// release settles, and returns each distinct state: the plan a dry-run
// shows. It is pure, like Plan: now is the start time.
func Simulate(rel *spec.Release, status Status, observed Observed, now time.Time, rollbackIntent bool) []SimStep {
	counts := map[string]Count{}
	for v, c := range observed.Versions {
		counts[v] = c
	}
	split := observed.Split
	router := observed.Router
	start := now
	var out []SimStep
	cmd := CmdNone
	last := ""
	for i := 0; i < maxSimPasses; i++ {
		vs := map[string]Count{}
		for v, c := range counts {
			if c.Total > 0 {
				vs[v] = c
			}
		}
		in := Input{Spec: rel, Status: status, Observed: Observed{Versions: vs, Router: router, Split: split}, Command: cmd, Now: now,
			Checks: passingChecks(rel, status, now), RollbackIntent: rollbackIntent}
		d := Plan(in)
		cmd = CmdNone
		for v, n := range d.Replicas {
			counts[v] = Count{Total: n, Ready: n}
		}
		if d.Split != nil {
			split = *d.Split
		}
		st := SimStep{After: now.Sub(start), Phase: d.Status.Phase, Step: d.Status.Step, Replicas: d.Replicas,
			Weights: d.Status.Weights, Message: d.Status.Message}
		for _, e := range d.Events {
			st.Events = append(st.Events, e.Reason)
		}
		settled := d.Status.CanaryVersion == "" && (d.Status.Phase == Healthy || d.Status.Phase == RolledBack || d.Status.Phase == Degraded)
		switch {
		case d.Status.Phase == Paused:
			st.Waits = "promote (" + d.Status.Message + ")"
			cmd = CmdPromote
		case d.RequeueAfter > time.Second && d.Status.CanaryVersion != "":
			st.Waits = fmt.Sprintf("%s (%s)", d.RequeueAfter.Round(time.Second), d.Status.Message)
		}
		key := fmt.Sprint(st.Phase, st.Step, st.Replicas, st.Weights, st.Waits)
		if key != last || len(st.Events) > 0 {
			out = append(out, st)
			last = key
		}
		status = d.Status
		if settled && d.Status.ScaleDownAt.Before(now) || settled && i > 0 && d.RequeueAfter == 0 {
			break
		}
		if st.Waits != "" && cmd == CmdNone {
			now = now.Add(d.RequeueAfter)
		} else if settled {
			now = now.Add(max(d.RequeueAfter, time.Millisecond))
		}
	}
	return out
}

// passingChecks answers every analysis check of the release being rolled
// out with a success now (the simulation assumes the new version is good).
func passingChecks(rel *spec.Release, st Status, now time.Time) map[string]CheckResult {
	a := rel.Strategy.Analysis
	if a == nil || st.CanaryVersion == "" {
		return nil
	}
	out := map[string]CheckResult{}
	for _, c := range a.Checks {
		out[c.Name] = CheckResult{Version: st.CanaryVersion, Runs: []CheckRun{{At: now, OK: true, Message: "simulated"}}}
	}
	return out
}
