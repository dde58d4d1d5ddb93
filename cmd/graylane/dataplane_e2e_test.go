package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestEndToEndDataPlaneOutlivesGraylane: graylane is SIGKILLed three times
// in the middle of a canary under continuous load through the built-in
// proxy, and restarted each time. The proxy runs in its own process
// (`graylane proxy`): it keeps serving with its last routes while graylane
// is down, and the restarted graylane adopts it. Not one request fails, no
// request reaches a version outside the split — v1 keeps running at weight
// 0 during v2's scaleDownDelay the whole time, a trap for a proxy that
// routes to any version it knows — and the canary completes.
func TestEndToEndDataPlaneOutlivesGraylane(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	port := testenv.FreePort(t)
	doc := func(version, steps string) string {
		return fmt.Sprintf(`app: shop
version: %s
replicas: 2
strategy:
  steps: %s
  scaleDownDelay: 2m
backend:
  type: process
  process: {command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"], proxy: 127.0.0.1:%d, stopGracePeriod: 5s}
health: {path: /healthz, interval: 200ms}
`, version, steps, port)
	}
	fast := "[{setWeight: 50}, {pause: {duration: 1s}}, {setWeight: 100}]"
	slow := "[{setWeight: 20}, {pause: {duration: 4s}}, {setWeight: 50}, {pause: {duration: 4s}}, {setWeight: 80}, {pause: {duration: 4s}}, {setWeight: 100}]"
	g.PutSpec("shop", doc("v1", fast))
	waitFor(t, g, "shop", 60*time.Second, "v1 healthy", healthyAt("v1"))
	g.PutSpec("shop", doc("v2", fast))
	waitFor(t, g, "shop", 60*time.Second, "v2 healthy", healthyAt("v2"))
	v1Out := time.Now() // from here v1 runs at weight 0 (scaleDownDelay 2m)
	proxyPID := g.ProxyPID()
	if proxyPID == 0 {
		t.Fatal("no proxy process runs")
	}

	load := loadgen.Start(t, loadgen.Config{URL: fmt.Sprintf("http://127.0.0.1:%d/", port), Workers: 6})
	g.PutSpec("shop", doc("v3", slow))
	kills := 0
	for _, at := range []func(engine.AppView) bool{
		func(v engine.AppView) bool { return v.Status.CanaryVersion == "v3" }, // the canary just began
		func(v engine.AppView) bool { return v.Status.Weights["v3"] == 20 },
		func(v engine.AppView) bool { return v.Status.Weights["v3"] == 50 },
	} {
		v := waitFor(t, g, "shop", 90*time.Second, "the next kill point", at)
		v1Running := false
		for _, in := range v.Status.Instances {
			v1Running = v1Running || (in.Version == "v1" && in.Ready)
		}
		if !v1Running {
			t.Fatalf("v1 is not running at weight 0 at kill %d: the test would prove nothing (%+v)", kills+1, v.Status.Instances)
		}
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
		g.Kill()
		kills++
		time.Sleep(500 * time.Millisecond) // graylane stays dead a moment; the proxy serves on
		g.Restart()
		if pid := g.ProxyPID(); pid != proxyPID {
			t.Fatalf("after restart %d the proxy process is %d, want the adopted %d", kills, pid, proxyPID)
		}
	}
	waitFor(t, g, "shop", 120*time.Second, "v3 healthy after the kills", healthyAt("v3"))
	samples := load.Stop().Samples

	fails := loadgen.Failures(samples)
	seen := map[string]int{}
	outside := 0
	for _, s := range samples {
		seen[s.Version]++
		if s.Version == "v1" && s.At.After(v1Out.Add(100*time.Millisecond)) {
			outside++
		}
	}
	t.Logf("%d requests through the proxy while graylane was SIGKILLed %d times mid-canary: %d failed, %d served by v1 (weight 0), by version %v",
		len(samples), kills, len(fails), outside, seen)
	if len(fails) > 0 {
		t.Fatalf("%d requests failed; first %+v", len(fails), fails[0])
	}
	if outside > 0 {
		t.Fatalf("%d requests reached v1, outside the split", outside)
	}
	if seen["v2"] == 0 || seen["v3"] == 0 {
		t.Fatalf("the canary's traffic never split: %v", seen)
	}
	v, err := g.Client().App(context.Background(), "shop")
	if err != nil || v.Status.Phase != rollout.Healthy || v.Status.StableVersion != "v3" {
		t.Fatalf("after the kills: %+v, %v", v.Status, err)
	}
}
