package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

func TestSimulateCanary(t *testing.T) {
	rel, err := spec.Parse([]byte(strings.Replace(canaryYAML, "version: v1", "version: v2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := Status{Phase: Healthy, StableVersion: "v1", Weights: map[string]int{"v1": 100}}
	obs := Observed{Versions: map[string]Count{"v1": {Total: 4, Ready: 4}}, Router: true, Split: traffic.New(traffic.VersionWeight{Version: "v1", Weight: 100})}
	steps := Simulate(rel, st, obs, now, false)
	var lines []string
	for _, s := range steps {
		lines = append(lines, fmt.Sprintf("%s %s step=%d want=%s weights=%v waits=%q", s.After, s.Phase, s.Step, fmtReplicas(s.Replicas), s.Weights, s.Waits))
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"0s Progressing step=0 want=v1:4,v2:1",
		"weights=map[v1:75 v2:25]",
		"Paused step=3 want=v1:4,v2:2 weights=map[v1:50 v2:50] waits=\"promote",
		"5s Healthy step=0 want=v1:4,v2:4 weights=map[v2:100]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("simulation lacks %q:\n%s", want, got)
		}
	}
	if last := steps[len(steps)-1]; last.Phase != Healthy || last.Weights["v2"] != 100 {
		t.Errorf("last state = %+v", last)
	}
}
