package main

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/nginxtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// The process backend as the workload and Debian's nginx as the traffic
// router, wired through graylane's own configuration (nginx.*), driven by
// the real binary: a canary under load through nginx loses no request and
// the split follows the weights.
func TestEndToEndNginxRouterWithProcessBackend(t *testing.T) {
	testenv.IntegrationTest(t)
	ngx := nginxtest.Start(t, nginxtest.Options{})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{
		"nginx": map[string]any{
			"binary": ngx.Binary, "prefix": ngx.Prefix, "conf": ngx.ConfFile, "pidFile": ngx.PIDFile,
			"includeDir": ngx.IncludeDir, "errorLog": ngx.ErrorLog,
			"statusAddr": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		},
	}})
	doc := func(version string) string {
		return fmt.Sprintf(`app: web
version: %s
replicas: 2
strategy:
  steps: [{setWeight: 25}, {pause: {duration: 3s}}, {setWeight: 75}, {pause: {duration: 3s}}, {setWeight: 100}]
  scaleDownDelay: 1s
backend:
  type: process
  process: {command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"], stopGracePeriod: 5s}
traffic:
  type: nginx
  nginx: {listen: "%s", failTimeout: 2s}
health: {path: /healthz, interval: 200ms}
`, version, listen)
	}
	g.PutSpec("web", doc("v1"))
	waitFor(t, g, "web", 60*time.Second, "v1 healthy behind nginx", healthyAt("v1"))

	wl := watchWeights(t.Context(), g.Client(), "web")
	load := loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 4})
	g.PutSpec("web", doc("v2"))
	waitFor(t, g, "web", 90*time.Second, "v2 healthy behind nginx", healthyAt("v2"))
	waitFor(t, g, "web", 30*time.Second, "v1 gone", func(v engine.AppView) bool {
		for _, in := range v.Status.Instances {
			if in.Version == "v1" {
				return false
			}
		}
		return v.Status.Phase == rollout.Healthy
	})
	samples := load.Stop().Samples
	if f := loadgen.Failures(samples); len(f) > 0 {
		t.Fatalf("%d of %d requests through nginx failed; first %+v\n%s", len(f), len(samples), f[0], ngx.LogTail(20))
	}
	t.Logf("%d requests through nginx during the canary, 0 failed", len(samples))
	wl.mu.Lock()
	changes := append([]weightChange(nil), wl.changes...)
	wl.mu.Unlock()
	judged := 0
	for i := 0; i+1 < len(changes); i++ {
		w := changes[i].weights
		if w["v2"] == 0 || w["v1"] == 0 {
			continue
		}
		// SetWeights returns once nginx serves the new config, and the
		// status is written after it: requests after the change use it
		share, n := loadgen.Share(samples, "v2", changes[i].at.Add(100*time.Millisecond), changes[i+1].at)
		if n < 100 {
			continue
		}
		t.Logf("weights %v: v2 served %.1f%% of %d", w, share*100, n)
		if math.Abs(share-float64(w["v2"])/100) > 0.06 {
			t.Errorf("weights %v: v2 served %.1f%% of %d requests", w, share*100, n)
		}
		judged++
	}
	if judged < 2 {
		t.Fatalf("only %d weight steps judged: %v", judged, changes)
	}
}
