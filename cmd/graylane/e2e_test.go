package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
)

func releaseDoc(app, version string, proxyPort int, strategy string) string {
	return fmt.Sprintf(`app: %s
version: %s
replicas: 4
strategy:
%s
backend:
  type: process
  process:
    command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"]
    proxy: 127.0.0.1:%d
    stopGracePeriod: 5s
traffic:
  trust: {clientIPs: [127.0.0.1]}   # the tests and graylane's analysis checks may steer
health:
  path: /healthz
  interval: 200ms
  timeout: 1s
`, app, version, strategy, proxyPort)
}

const canarySteps = `  type: canary
  steps:
    - setWeight: 20
    - pause: {duration: 3s}
    - setWeight: 50
    - pause: {duration: 3s}
    - setWeight: 80
    - pause: {duration: 3s}
    - setWeight: 100
  scaleDownDelay: 2s
  progressDeadline: 2m`

const rollingSteps = `  type: rolling
  maxSurge: 1
  maxUnavailable: 0
  progressDeadline: 2m`

// waitFor polls the app until cond holds or the deadline passes.
func waitFor(t *testing.T, g *graylanetest.Graylane, app string, d time.Duration, what string, cond func(engine.AppView) bool) engine.AppView {
	t.Helper()
	var last engine.AppView
	testenv.Eventually(t, d, what, func() error {
		v, err := g.Client().App(context.Background(), app)
		if err != nil {
			return err
		}
		last = v
		return testenv.Check(cond(v), "status %+v", v.Status)
	})
	return last
}

// reconciles returns graylane's count of finished reconcile passes
// (graylane_reconcile_total, every result) from /metrics.
func reconciles(t *testing.T, g *graylanetest.Graylane) (float64, error) {
	t.Helper()
	resp, err := http.Get(g.APIURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var n float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "graylane_reconcile_total{"); ok {
			_, val, _ := strings.Cut(rest, "} ")
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return 0, fmt.Errorf("/metrics line %q: %w", line, err)
			}
			n += v
			found = true
		}
	}
	if !found {
		return 0, errors.New("/metrics has no graylane_reconcile_total")
	}
	return n, nil
}

// heldPastPause is the positive event behind "the release must not move
// while the centre is down": once the canary's pause (pause long, from the
// step start in down) is over, it waits until graylane has finished two
// more reconcile passes — the second began after the pause had ended, so
// the engine re-planned when the pause would have let the release advance
// — and returns the app's view then, for the caller to check that it held.
func heldPastPause(t *testing.T, g *graylanetest.Graylane, app string, down engine.AppView, pause time.Duration) engine.AppView {
	t.Helper()
	end := down.Status.StepStartedAt.Add(pause)
	base := -1.0
	testenv.Eventually(t, pause+30*time.Second, "two reconcile passes after the pause ended", func() error {
		if time.Now().Before(end) {
			return fmt.Errorf("the pause runs until %s", end.Format(time.RFC3339Nano))
		}
		n, err := reconciles(t, g)
		if err != nil {
			return err
		}
		if base < 0 {
			base = n
		}
		return testenv.Check(n >= base+2, "%v passes since the pause ended", n-base)
	})
	v, err := g.Client().App(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func healthyAt(version string) func(engine.AppView) bool {
	return func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Healthy && v.Status.StableVersion == version && v.Status.CanaryVersion == ""
	}
}

// weightLog records every change of an app's weights seen on its event stream.
type weightLog struct {
	mu      sync.Mutex
	changes []weightChange
}

type weightChange struct {
	at      time.Time
	weights map[string]int
}

func watchWeights(ctx context.Context, c *client.Client, app string) *weightLog {
	wl := &weightLog{}
	go c.Watch(ctx, app, func(m engine.Message) bool {
		if m.App == nil {
			return true
		}
		w := m.App.Status.Weights
		wl.mu.Lock()
		defer wl.mu.Unlock()
		if n := len(wl.changes); n == 0 || fmt.Sprint(wl.changes[n-1].weights) != fmt.Sprint(w) {
			wl.changes = append(wl.changes, weightChange{at: time.Now(), weights: w})
		}
		return true
	})
	return wl
}

func TestEndToEndCanaryThenRollingUnderLoad(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	proxy := testenv.FreePort(t)
	g.PutSpec("shop", releaseDoc("shop", "v1", proxy, canarySteps))
	waitFor(t, g, "shop", 60*time.Second, "v1 healthy", healthyAt("v1"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wl := watchWeights(ctx, g.Client(), "shop")
	load := loadgen.Start(t, loadgen.Config{URL: fmt.Sprintf("http://127.0.0.1:%d/", proxy), Workers: 6})

	// a console edit: the spec with a new version, straight into etcd
	g.PutSpec("shop", releaseDoc("shop", "v2", proxy, canarySteps))
	waitFor(t, g, "shop", 90*time.Second, "v2 canary finished", healthyAt("v2"))
	waitFor(t, g, "shop", 30*time.Second, "v1 scaled down after scaleDownDelay", func(v engine.AppView) bool {
		for _, in := range v.Status.Instances {
			if in.Version == "v1" {
				return false
			}
		}
		return true
	})
	// and then a rolling update
	g.PutSpec("shop", releaseDoc("shop", "v3", proxy, rollingSteps))
	waitFor(t, g, "shop", 90*time.Second, "v3 rolling finished", func(v engine.AppView) bool {
		if !healthyAt("v3")(v) {
			return false
		}
		for _, in := range v.Status.Instances {
			if in.Version != "v3" {
				return false
			}
		}
		return true
	})
	samples := load.Stop().Samples
	cancel()

	fails := loadgen.Failures(samples)
	t.Logf("load: %d requests through the proxy during v1->v2 canary and v2->v3 rolling, %d failed", len(samples), len(fails))
	if len(fails) > 0 {
		t.Fatalf("%d of %d requests failed; first: %+v", len(fails), len(samples), fails[0])
	}
	// the observed split at each canary weight step is within a few
	// percent of the weight
	wl.mu.Lock()
	changes := append([]weightChange(nil), wl.changes...)
	wl.mu.Unlock()
	checked := 0
	for i := 0; i+1 < len(changes); i++ {
		w := changes[i].weights
		if w["v2"] == 0 || w["v1"] == 0 {
			continue
		}
		from, to := changes[i].at.Add(150*time.Millisecond), changes[i+1].at
		share, n := loadgen.Share(samples, "v2", from, to)
		if n < 200 {
			t.Logf("weights %v: only %d samples in the window, not judged", w, n)
			continue
		}
		want := float64(w["v2"]) / 100
		t.Logf("weights %v: v2 served %.1f%% of %d requests", w, share*100, n)
		if math.Abs(share-want) > 0.05 {
			t.Errorf("weights %v: v2 served %.1f%% of %d requests, want %d%% ± 5", w, share*100, n, w["v2"])
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("only %d canary weight steps had enough traffic to judge (changes: %v)", checked, changes)
	}
}

func TestEndToEndKillNineMidCanaryResumes(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	proxy := testenv.FreePort(t)
	steps := `  type: canary
  steps:
    - setWeight: 25
    - pause: {duration: 1s}
    - setWeight: 50
    - pause: {}
    - setWeight: 100
  scaleDownDelay: 1s`
	g.PutSpec("cart", releaseDoc("cart", "v1", proxy, steps))
	waitFor(t, g, "cart", 60*time.Second, "v1 healthy", healthyAt("v1"))

	ctx := context.Background()
	if err := g.Client().SetVersion(ctx, "cart", "v2"); err != nil {
		t.Fatal(err)
	}
	// kill as soon as the canary's first instance exists, in the middle of
	// its first step
	waitFor(t, g, "cart", 30*time.Second, "canary started", func(v engine.AppView) bool {
		for _, in := range v.Status.Instances {
			if in.Version == "v2" {
				return true
			}
		}
		return false
	})
	g.Kill()
	g.Restart()
	paused := waitFor(t, g, "cart", 60*time.Second, "paused at step 4 after restart", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Step == 3 && v.Status.Weights["v2"] == 50
	})
	pids := map[string]string{}
	for _, in := range paused.Status.Instances {
		pids[in.ID] = in.Meta["pid"]
	}
	// kill again while paused: the restart must find the same step, the
	// same instances (adopted, same pids) and the same weights
	g.Kill()
	g.Restart()
	again := waitFor(t, g, "cart", 30*time.Second, "status back after second restart", func(v engine.AppView) bool {
		ready := 0
		for _, in := range v.Status.Instances {
			if in.Ready {
				ready++
			}
		}
		return ready == len(pids)
	})
	if again.Status.Step != 3 || again.Status.Phase != rollout.Paused || again.Status.Weights["v2"] != 50 {
		t.Fatalf("restart moved the release: %+v", again.Status.Status)
	}
	for _, in := range again.Status.Instances {
		if pids[in.ID] == "" || pids[in.ID] != in.Meta["pid"] {
			t.Fatalf("instance %s has pid %s after restart, was %s: not adopted", in.ID, in.Meta["pid"], pids[in.ID])
		}
	}
	if _, err := g.Client().Command(ctx, "cart", rollout.CmdPromote); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "cart", 60*time.Second, "v2 healthy after promote", healthyAt("v2"))
	for id, n := range g.Starts("cart") {
		if n != 1 {
			t.Errorf("slot %s was started %d times", id, n)
		}
	}
	if len(g.Starts("cart")) != 8 {
		t.Errorf("want 8 slots (4 v1, 4 v2), got %v", g.Starts("cart"))
	}
}

func TestEndToEndBadInputChangesNothing(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	proxy := testenv.FreePort(t)
	good := releaseDoc("api", "v1", proxy, canarySteps)
	g.PutSpec("api", good)
	before := waitFor(t, g, "api", 60*time.Second, "v1 healthy", healthyAt("v1"))
	ctx := context.Background()
	c := g.Client()

	// through the API: rejected with the field, nothing written
	for _, bad := range []struct {
		do    func() error
		field string
	}{
		{func() error {
			return c.PutSpec(ctx, "api", []byte(strings.Replace(good, "setWeight: 50", "setWeight: 150", 1)))
		}, "strategy.steps[2].setWeight"},
		{func() error { return c.PutSpec(ctx, "api", []byte(good+"replicaz: 3\n")) }, "replicaz"},
		{func() error { return c.SetVersion(ctx, "api", "v2;shutdown -h now") }, "version"},
		{func() error { return c.SetVersion(ctx, "api", "$(id)") }, "version"},
	} {
		err := bad.do()
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Field != bad.field {
			t.Fatalf("want 400 naming %s, got %v", bad.field, err)
		}
	}
	resp, err := g.Etcd().Get(ctx, "/graylane/apps/api")
	if err != nil || string(resp.Kvs[0].Value) != good {
		t.Fatalf("the API's rejected writes changed etcd: %v", err)
	}

	// straight into etcd: the engine rejects it and keeps the last good spec
	g.PutSpec("api", strings.Replace(strings.Replace(good, "version: v1", "version: v2", 1), "setWeight: 50", "setWeight: 150", 1))
	v := waitFor(t, g, "api", 30*time.Second, "spec error shown", func(v engine.AppView) bool { return v.Status.SpecError != nil })
	if v.Status.SpecError.Field != "strategy.steps[2].setWeight" || !strings.Contains(v.Status.SpecError.Error, "150 is over 100") {
		t.Fatalf("spec error = %+v", v.Status.SpecError)
	}
	if v.Spec.Version != "v1" || v.Status.Phase != rollout.Healthy || v.Status.StableVersion != "v1" {
		t.Fatalf("last good spec not kept: %s %+v", v.Spec.Version, v.Status.Status)
	}
	for _, in := range v.Status.Instances {
		if in.Version != "v1" {
			t.Fatalf("an instance of %s was started from a rejected spec", in.Version)
		}
	}
	if len(v.Status.Instances) != len(before.Status.Instances) {
		t.Fatalf("instances changed: %d -> %d", len(before.Status.Instances), len(v.Status.Instances))
	}
	if !strings.Contains(g.Log(), "strategy.steps[2].setWeight: 150 is over 100") {
		t.Fatal("graylane's log does not name the rejected field")
	}
	// the next good document is applied and clears the error
	g.PutSpec("api", releaseDoc("api", "v1", proxy, rollingSteps))
	waitFor(t, g, "api", 30*time.Second, "error cleared", func(v engine.AppView) bool {
		return v.Status.SpecError == nil && v.Spec.Strategy.Type == "rolling"
	})
}

func TestEndToEndAnalysisGatesAndAborts(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	proxy := testenv.FreePort(t)
	strategy := func(smokeStatus int) string {
		return fmt.Sprintf(`  type: canary
  autoRollback: true
  analysis:
    interval: 1s
    checks:
      - name: smoke
        http:
          url: "http://127.0.0.1:%d/healthz"
          headers: {X-Graylane-Version: "{{.Version}}"}   # through the proxy, to the canary
          status: %d
  steps:
    - setWeight: 25
    - analysis: {checks: [smoke], count: 3}
    - setWeight: 100
  scaleDownDelay: 1s`, proxy, smokeStatus)
	}
	g.PutSpec("gate", releaseDoc("gate", "v1", proxy, strategy(200)))
	waitFor(t, g, "gate", 60*time.Second, "v1 healthy", healthyAt("v1"))

	// passing checks: the analysis step completes after 3 good runs
	g.PutSpec("gate", releaseDoc("gate", "v2", proxy, strategy(200)))
	v := waitFor(t, g, "gate", 60*time.Second, "waiting at the analysis step", func(v engine.AppView) bool {
		return v.Status.CanaryVersion == "v2" && v.Status.Step == 1
	})
	if !strings.Contains(v.Status.Message, "analysis smoke") {
		t.Fatalf("analysis progress not shown: %q", v.Status.Message)
	}
	v = waitFor(t, g, "gate", 60*time.Second, "v2 promoted after analysis", healthyAt("v2"))
	if v.Status.History[0].Version != "v2" || v.Status.History[0].Outcome != "promoted" {
		t.Fatalf("history: %+v", v.Status.History)
	}

	// failing checks: the release is rolled back
	g.PutSpec("gate", releaseDoc("gate", "v3", proxy, strategy(418)))
	v = waitFor(t, g, "gate", 60*time.Second, "v3 rolled back by analysis", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.RolledBack && v.Status.RejectedVersion == "v3"
	})
	if v.Status.StableVersion != "v2" || v.Status.Weights["v2"] != 100 {
		t.Fatalf("after the failed analysis: %+v", v.Status.Status)
	}
	if !strings.Contains(g.Log(), "check smoke failed") {
		t.Fatal("the failed check is not in graylane's log")
	}
}

// With process.stopOnExit (make run's setting), a graceful stop of
// graylane stops the instances it started, and the next start brings the
// release back; without it they keep running to be adopted (see
// TestEndToEndKillNineMidCanaryResumes).
func TestEndToEndStopOnExitStopsInstances(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{"process": map[string]any{"stopOnExit": true}}})
	proxy := testenv.FreePort(t)
	g.PutSpec("cart", releaseDoc("cart", "v1", proxy, rollingSteps))
	v := waitFor(t, g, "cart", 60*time.Second, "v1 healthy", healthyAt("v1"))
	var pids []int
	for _, in := range v.Status.Instances {
		pid, err := strconv.Atoi(in.Meta["pid"])
		if err != nil {
			t.Fatalf("instance %s: pid %q", in.ID, in.Meta["pid"])
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		t.Fatal("no instances")
	}
	g.Stop()
	for _, pid := range pids {
		if processRuns(pid) {
			t.Errorf("instance pid %d still runs after graylane stopped", pid)
		}
	}
	if !strings.Contains(g.Log(), "process instances stopped (process.stopOnExit)") {
		t.Errorf("log does not say the instances were stopped:\n%s", g.LogTail(20))
	}
	g.Restart()
	waitFor(t, g, "cart", 60*time.Second, "v1 healthy again after the restart", healthyAt("v1"))
}

// processRuns reports whether pid is a live process: not gone, not a
// zombie waiting for init to reap it.
func processRuns(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the state follows the last ')'
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}
