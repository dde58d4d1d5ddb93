package rollout

import (
	"fmt"
	"testing"
	"time"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

func TestScaleFor(t *testing.T) {
	for _, c := range []struct{ r, w, want int }{
		{4, 0, 0}, {4, 1, 1}, {4, 25, 1}, {4, 26, 2}, {4, 50, 2}, {4, 100, 4},
		{10, 10, 1}, {10, 11, 2}, {3, 33, 1}, {3, 34, 2}, {1, 5, 1},
	} {
		if got := scaleFor(c.r, c.w); got != c.want {
			t.Errorf("scaleFor(%d, %d) = %d, want %d", c.r, c.w, got, c.want)
		}
	}
}

func TestWeightAndCanaryReplicasAtEachStep(t *testing.T) {
	rel, err := spec.Parse([]byte(canaryScaleYAML))
	if err != nil {
		t.Fatal(err)
	}
	p := &planner{replicas: rel.ReplicaCount(), strategy: &rel.Strategy}
	// steps: setCanaryScale{replicas 2}, pause{}, setWeight 10,
	// setCanaryScale{matchTrafficWeight}, setWeight 30; then promotion
	want := []struct{ weight, replicas int }{{0, 2}, {0, 2}, {10, 2}, {10, 1}, {30, 3}, {100, 10}}
	for i, w := range want {
		if got := p.weightAt(i); got != w.weight {
			t.Errorf("weightAt(%d) = %d, want %d", i, got, w.weight)
		}
		if got := p.canaryReplicas(i); got != w.replicas {
			t.Errorf("canaryReplicas(%d) = %d, want %d", i, got, w.replicas)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	rel, err := spec.Parse([]byte(canaryYAML))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	healthy := Status{Phase: Healthy, StableVersion: "v1"}
	obs := Observed{Versions: map[string]Count{"v1": {4, 4}}, Router: true,
		Split: traffic.Split{Weights: []traffic.VersionWeight{weight("v1", 100)}}}
	for _, c := range []struct {
		cmd  Command
		want string
	}{
		{CmdPromote, "no rollout in progress"},
		{CmdPromoteFull, "no rollout in progress"},
		{CmdAbort, "no rollout in progress"},
		{CmdRollback, "no previous version to roll back to"},
		{CmdResume, "nothing is paused, waiting or rejected"},
		{Command("dance"), "unknown command"},
	} {
		d := Plan(Input{Spec: rel, Status: healthy, Observed: obs, Command: c.cmd, Now: now})
		if d.CommandErr != c.want {
			t.Errorf("%s on a healthy app: CommandErr = %q, want %q", c.cmd, d.CommandErr, c.want)
		}
		if d.Status.Phase != Healthy || d.Status.StableVersion != "v1" {
			t.Errorf("%s rejected but status changed: %+v", c.cmd, d.Status)
		}
		if len(d.Events) != 1 || d.Events[0].Type != Warning {
			t.Errorf("%s rejected: want one warning event, got %v", c.cmd, d.Events)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for _, s := range []string{"promote", "promote-full", "pause", "resume", "abort", "rollback"} {
		if c, ok := ParseCommand(s); !ok || string(c) != s {
			t.Errorf("ParseCommand(%q) = %q, %v", s, c, ok)
		}
	}
	for _, s := range []string{"", "Promote", "retry", "promote;rm"} {
		if _, ok := ParseCommand(s); ok {
			t.Errorf("ParseCommand(%q) accepted", s)
		}
	}
}

// The status of a release mid-canary is enough to resume it after a crash:
// planning again from the persisted status and the observed world yields
// the same step and the same actions, never a repeated or skipped step.
func TestReplanAfterRestartIsIdempotent(t *testing.T) {
	w := newWorld(t, canaryYAML)
	for _, l := range []string{"run", "version v2", "wait 5s"} {
		w.do(l)
	}
	if w.status.Step != 3 {
		t.Fatalf("setup: step = %d, want 3", w.status.Step)
	}
	in := w.input(CmdNone)
	first := Plan(in)
	// "restart": the same persisted status, the same observation
	second := Plan(Input{Spec: in.Spec, Status: first.Status, Observed: in.Observed, Now: in.Now.Add(time.Minute)})
	if second.Status.Step != first.Status.Step || fmtReplicas(second.Replicas) != fmtReplicas(first.Replicas) || fmtSplit(second.Split) != fmtSplit(first.Split) {
		t.Fatalf("replan moved: first step=%d want=%s split=%s; second step=%d want=%s split=%s",
			first.Status.Step, fmtReplicas(first.Replicas), fmtSplit(first.Split),
			second.Status.Step, fmtReplicas(second.Replicas), fmtSplit(second.Split))
	}
}

func BenchmarkPlan(b *testing.B) {
	rel, err := spec.Parse([]byte(canaryYAML))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Input{
		Spec: rel,
		Status: Status{Phase: Progressing, StableVersion: "v1", CanaryVersion: "v2", Step: 2,
			StepStartedAt: now, LastProgressAt: now, Weights: map[string]int{"v1": 75, "v2": 25}},
		Observed: Observed{Versions: map[string]Count{"v1": {4, 4}, "v2": {2, 1}}, Router: true,
			Split: traffic.Split{Weights: []traffic.VersionWeight{weight("v2", 25), weight("v1", 75)}}},
		Now: now.Add(time.Second),
	}
	b.ReportAllocs()
	for b.Loop() {
		Plan(in)
	}
}

func ExamplePlan() {
	rel, _ := spec.Parse([]byte(`
app: demo
version: v2
replicas: 4
strategy:
  steps: [{setWeight: 25}, {pause: {}}]
backend: {type: process, process: {command: [demoapp]}}
`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := Plan(Input{
		Spec:   rel,
		Status: Status{Phase: Healthy, StableVersion: "v1"},
		Observed: Observed{Versions: map[string]Count{"v1": {4, 4}}, Router: true,
			Split: traffic.Split{Weights: []traffic.VersionWeight{{Version: "v1", Weight: 100}}}},
		Now: now,
	})
	fmt.Println(d.Status.Phase, d.Status.CanaryVersion, "step", d.Status.Step)
	fmt.Println("replicas:", d.Replicas["v1"], d.Replicas["v2"])
	fmt.Println("split:", d.Split.Weights)
	// Output:
	// Progressing v2 step 0
	// replicas: 4 1
	// split: [{v1 100}]
}
