package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// graylane with Nacos (Polaris speaking the Nacos protocol) as its source
// and the process backend: releases edited in Nacos roll out, versions set
// through graylane land in Nacos, a Nacos outage holds the release, invalid
// content keeps the last good spec.
func TestEndToEndNacosSource(t *testing.T) {
	testenv.IntegrationTest(t)
	pol := polaris.Start(t)
	const group = "GRAYLANE_RELEASES"
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{
		"source": map[string]any{"type": "nacos"},
		"nacos":  map[string]any{"servers": []string{pol.NacosAddr()}, "group": group},
	}})
	proxy := testenv.FreePort(t)
	steps := `  type: canary
  steps:
    - setWeight: 50
    - pause: {duration: 4s}
    - setWeight: 100
  scaleDownDelay: 1s
  progressDeadline: 1m
  autoRollback: true`
	ctx := context.Background()
	// the first release goes in through graylane's API, which also adds
	// the app to Nacos' index dataId
	if err := g.Client().PutSpec(ctx, "shop", []byte(releaseDoc("shop", "v1", proxy, steps))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "shop", 60*time.Second, "v1 healthy from Nacos", healthyAt("v1"))

	// a console edit of the dataId starts the canary
	pol.PublishConfig(t, group, "shop", releaseDoc("shop", "v2", proxy, steps))
	waitFor(t, g, "shop", 60*time.Second, "v2 canary at its pause", func(v engine.AppView) bool {
		return v.Status.CanaryVersion == "v2" && v.Status.Step == 1
	})
	// Nacos dies mid-canary: no advance on stale data, no rollback
	pol.Kill()
	down := waitFor(t, g, "shop", 30*time.Second, "outage seen", func(v engine.AppView) bool { return !v.Status.Source.Ready })
	held := heldPastPause(t, g, "shop", down, 4*time.Second) // the pause must not complete while Nacos is down
	if held.Status.Step != down.Status.Step || held.Status.Phase == rollout.RolledBack || held.Status.StableVersion != "v1" {
		t.Fatalf("release moved while Nacos was down: %+v -> %+v", down.Status.Status, held.Status.Status)
	}
	pol.Restart()
	waitFor(t, g, "shop", 90*time.Second, "v2 healthy after Nacos came back", healthyAt("v2"))

	// setting a version through graylane lands in Nacos (read back with a
	// separate Nacos client: the Polaris console's own)
	if err := g.Client().SetVersion(ctx, "shop", "v3"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "Nacos holds v3", func() error {
		content, ok := pol.GetConfig(t, group, "shop")
		return testenv.Check(ok && strings.Contains(content, "version: v3"), "Nacos holds %q", content)
	})
	waitFor(t, g, "shop", 60*time.Second, "v3 healthy", healthyAt("v3"))

	// invalid content published in Nacos: last good spec kept, error shown
	pol.PublishConfig(t, group, "shop", strings.Replace(releaseDoc("shop", "v4", proxy, steps), "setWeight: 50", "setWeight: 150", 1))
	v := waitFor(t, g, "shop", 60*time.Second, "spec error shown", func(v engine.AppView) bool { return v.Status.SpecError != nil })
	if v.Status.SpecError.Field != "strategy.steps[0].setWeight" || v.Spec.Version != "v3" || v.Status.Phase != rollout.Healthy {
		t.Fatalf("invalid content: error %+v spec %s phase %s", v.Status.SpecError, v.Spec.Version, v.Status.Phase)
	}
	for _, in := range v.Status.Instances {
		if in.Version == "v4" {
			t.Fatal("an instance of the rejected v4 runs")
		}
	}
}
