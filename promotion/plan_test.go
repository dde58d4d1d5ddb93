package promotion

import (
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/testsupport/testenv"
)

// A release plan promotes orders, then web, each once the one before is
// Healthy in the target; a refusal that waiting does not change stops it
// before the next app.
func TestReleasePlan(t *testing.T) {
	testenv.IntegrationTest(t)
	w := newWorld(t, func(s *environments.Set) { s.Envs[1].AutoPromote, s.Envs[1].Soak.Duration = false, 0 })
	for _, app := range []string{"orders", "web", "cart"} {
		for _, e := range []string{"dev", "test"} {
			w.put(e, app, doc(app, "v1", "hello", 1, ""))
		}
		w.put("dev", app, doc(app, "v2", "two", 1, ""))
	}
	for _, app := range []string{"orders", "web", "cart"} {
		w.healthyApp("dev", app, "v2")
		w.healthyApp("test", app, "v1")
	}
	p, err := w.c.CreatePlan(w.ctx, "release 42", "test", []string{"orders", "web"}, Caller{Name: "alice", Via: ViaAPI, CanRelease: true})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	testenv.Eventually(t, 30*time.Second, "plan succeeded", func() error {
		got, err := w.c.Plan(w.ctx, p.ID)
		if err != nil {
			return err
		}
		line := got.Steps[0].State + "/" + got.Steps[1].State
		if len(seen) == 0 || seen[len(seen)-1] != line {
			seen = append(seen, line)
		}
		return testenv.Check(got.State == PlanSucceeded, "%s %s %v", got.State, got.Message, got.Steps)
	})
	for _, s := range seen {
		// web never starts before orders is Healthy
		if strings.HasPrefix(s, StepWaiting) || strings.HasPrefix(s, StepPending) || strings.HasPrefix(s, StepRollingOut) {
			if !strings.HasSuffix(s, "/"+StepWaiting) {
				t.Fatalf("web moved before orders was Healthy: %v", seen)
			}
		}
	}
	w.healthyApp("test", "orders", "v2")
	w.healthyApp("test", "web", "v2")

	// cart is rolling out a new version in dev: not promotable; the plan
	// stops at it and never starts web's second release
	w.put("dev", "cart", strings.Replace(doc("cart", "v3", "three", 1, ""), "strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0}", "strategy: {steps: [{setWeight: 50}, {pause: {}}]}", 1))
	w.put("dev", "web", doc("web", "v3", "three", 1, ""))
	w.healthyApp("dev", "web", "v3")
	p, err = w.c.CreatePlan(w.ctx, "", "test", []string{"cart", "web"}, Caller{Name: "alice", Via: ViaAPI, CanRelease: true})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "plan stopped at cart", func() error {
		got, err := w.c.Plan(w.ctx, p.ID)
		if err != nil {
			return err
		}
		return testenv.Check(got.State == PlanFailed, "%s %v", got.State, got.Steps)
	})
	got, _ := w.c.Plan(w.ctx, p.ID)
	if got.Steps[0].State != StepFailed || got.Steps[1].State != StepWaiting || w.stored("test", "web").Version != "v2" {
		t.Fatalf("web started although cart is not promotable: %v", got.Steps)
	}
	if !strings.Contains(got.Message, "stopped at cart (1 of 2): soak: v3") || !strings.Contains(got.Message, "still rolling out in dev") {
		t.Fatalf("plan message %q", got.Message)
	}
	if _, err := w.c.CancelPlan(w.ctx, p.ID, Caller{Name: "bob"}); err == nil {
		t.Fatal("a failed plan was cancelled")
	}
	// bad input
	for _, apps := range [][]string{nil, {"Web"}, {"a", "a"}} {
		if _, err := w.c.CreatePlan(w.ctx, "", "test", apps, Caller{Name: "alice"}); err == nil {
			t.Errorf("plan of %v accepted", apps)
		}
	}
	if _, err := w.c.CreatePlan(w.ctx, "", "dev", []string{"web"}, Caller{Name: "alice"}); err == nil {
		t.Error("a plan into dev (which has no from) accepted")
	}
}
