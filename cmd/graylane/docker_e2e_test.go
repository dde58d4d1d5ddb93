package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/dockertest"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/nginxtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// dockerDoc is a release of the demo app on a private engine: replicas
// containers publishing port 8080 on a free loopback port.
func dockerDoc(app, version, host string, replicas int, strategy, traffic string) string {
	return fmt.Sprintf(`app: %s
version: %s
replicas: %d
strategy:
%s
backend:
  type: docker
  docker:
    image: "demoapp:{{.Version}}"
    pull: never
    command: ["--version={{.Version}}", "--addr=0.0.0.0:8080"]
    port: 8080
    stopGracePeriod: 5s
    order: start-first
    hosts: ["%s"]
%s
health: {path: /healthz, interval: 200ms, timeout: 1s}
`, app, version, replicas, strategy, host, traffic)
}

// startDockerGraylane starts a private engine with the demo images and
// graylane with Debian's nginx as its router.
func startDockerGraylane(t *testing.T, images ...string) (*dockertest.Engine, *graylanetest.Graylane, string) {
	t.Helper()
	eng := dockertest.Start(t, dockertest.Options{})
	eng.DemoImages(t, images...)
	ngx := nginxtest.Start(t, nginxtest.Options{})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{
		"docker": map[string]any{"host": eng.Host, "drainDelay": "500ms"},
		"nginx": map[string]any{
			"binary": ngx.Binary, "prefix": ngx.Prefix, "conf": ngx.ConfFile, "pidFile": ngx.PIDFile,
			"includeDir": ngx.IncludeDir, "errorLog": ngx.ErrorLog,
			"statusAddr": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		},
	}})
	return eng, g, listen
}

func nginxTraffic(listen string) string {
	return fmt.Sprintf("traffic:\n  type: nginx\n  nginx: {listen: \"%s\", failTimeout: 2s}", listen)
}

func onlyVersion(version string) func(engine.AppView) bool {
	return func(v engine.AppView) bool {
		return healthyAt(version)(v) && onlyInstancesOf(version)(v)
	}
}

func onlyInstancesOf(version string) func(engine.AppView) bool {
	return func(v engine.AppView) bool {
		for _, in := range v.Status.Instances {
			if in.Version != version || !in.Ready {
				return false
			}
		}
		return len(v.Status.Instances) > 0
	}
}

// judgeSplit checks the share of canary at each weight step with enough
// samples, and that at least min steps were judged.
func judgeSplit(t *testing.T, wl *weightLog, samples []loadgen.Sample, canary string, tolerance float64, min int) {
	t.Helper()
	wl.mu.Lock()
	changes := append([]weightChange(nil), wl.changes...)
	wl.mu.Unlock()
	judged := 0
	for i := 0; i+1 < len(changes); i++ {
		w := changes[i].weights
		if w[canary] == 0 || w[canary] == 100 {
			continue
		}
		share, n := loadgen.Share(samples, canary, changes[i].at.Add(150*time.Millisecond), changes[i+1].at)
		if n < 100 {
			t.Logf("weights %v: only %d samples, not judged", w, n)
			continue
		}
		t.Logf("weights %v: %s served %.1f%% of %d requests", w, canary, share*100, n)
		if math.Abs(share-float64(w[canary])/100) > tolerance {
			t.Errorf("weights %v: %s served %.1f%% of %d requests, want %d%% ± %.0f", w, canary, share*100, n, w[canary], tolerance*100)
		}
		judged++
	}
	if judged < min {
		t.Fatalf("only %d weight steps judged (changes %v)", judged, changes)
	}
}

// A canary v1 -> v2 of 3 containers through nginx while a load generator
// runs: no request fails and the split follows the weights; then a
// rolling v2 -> v3 with order start-first: no request fails.
func TestEndToEndDockerCanaryThenRollingThroughNginx(t *testing.T) {
	testenv.IntegrationTest(t)
	eng, g, listen := startDockerGraylane(t, "demoapp:v1", "demoapp:v2", "demoapp:v3")
	canary := `  steps: [{setWeight: 20}, {pause: {duration: 4s}}, {setWeight: 50}, {pause: {duration: 4s}}, {setWeight: 80}, {pause: {duration: 4s}}, {setWeight: 100}]
  scaleDownDelay: 1s
  progressDeadline: 3m`
	rolling := `  type: rolling
  maxSurge: 1
  maxUnavailable: 0
  progressDeadline: 3m`
	g.PutSpec("shop", dockerDoc("shop", "v1", eng.Host, 3, canary, nginxTraffic(listen)))
	waitFor(t, g, "shop", 90*time.Second, "v1 healthy", onlyVersion("v1"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wl := watchWeights(ctx, g.Client(), "shop")
	load := loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 4})
	g.PutSpec("shop", dockerDoc("shop", "v2", eng.Host, 3, canary, nginxTraffic(listen)))
	waitFor(t, g, "shop", 3*time.Minute, "v2 canary complete, v1 gone", onlyVersion("v2"))
	canarySamples := load.Stop().Samples
	if f := loadgen.Failures(canarySamples); len(f) > 0 {
		t.Fatalf("%d of %d requests failed during the canary; first %+v", len(f), len(canarySamples), f[0])
	}
	t.Logf("canary: %d requests through nginx, 0 failed", len(canarySamples))
	judgeSplit(t, wl, canarySamples, "v2", 0.06, 2)

	load = loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 4})
	g.PutSpec("shop", dockerDoc("shop", "v3", eng.Host, 3, rolling, nginxTraffic(listen)))
	waitFor(t, g, "shop", 3*time.Minute, "v3 rolled out, v2 gone", onlyVersion("v3"))
	samples := load.Stop().Samples
	if f := loadgen.Failures(samples); len(f) > 0 {
		t.Fatalf("%d of %d requests failed during the rolling update; first %+v", len(f), len(samples), f[0])
	}
	t.Logf("rolling start-first: %d requests through nginx, 0 failed", len(samples))
}

// The same behind graylane's built-in proxy (traffic.type proxy with the
// docker backend): a canary v1 -> v2 of 3 containers under load loses no
// request and follows the weights; a rolling v2 -> v3 start-first loses
// none. Stopped containers are drained through the proxy first.
func TestEndToEndDockerCanaryThenRollingThroughProxy(t *testing.T) {
	testenv.IntegrationTest(t)
	eng := dockertest.Start(t, dockertest.Options{})
	eng.DemoImages(t, "demoapp:v1", "demoapp:v2", "demoapp:v3")
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{"docker": map[string]any{"host": eng.Host, "drainDelay": "200ms"}}})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	proxy := fmt.Sprintf("traffic:\n  type: proxy\n  proxy: {listen: \"%s\"}", listen)
	canary := `  steps: [{setWeight: 20}, {pause: {duration: 4s}}, {setWeight: 50}, {pause: {duration: 4s}}, {setWeight: 80}, {pause: {duration: 4s}}, {setWeight: 100}]
  scaleDownDelay: 1s
  progressDeadline: 3m`
	rolling := `  type: rolling
  maxSurge: 1
  maxUnavailable: 0
  progressDeadline: 3m`
	g.PutSpec("shop", dockerDoc("shop", "v1", eng.Host, 3, canary, proxy))
	waitFor(t, g, "shop", 90*time.Second, "v1 healthy", onlyVersion("v1"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wl := watchWeights(ctx, g.Client(), "shop")
	load := loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 6})
	evlog := eng.WatchEvents(t, docker.LabelApp+"=shop")
	edit := time.Now()
	g.PutSpec("shop", dockerDoc("shop", "v2", eng.Host, 3, canary, proxy))
	waitFor(t, g, "shop", 3*time.Minute, "v2 canary complete, v1 gone", onlyVersion("v2"))
	canarySamples := load.Stop().Samples
	for _, ev := range evlog.Events(t) {
		if ev.Action == "create" && strings.HasPrefix(ev.Name, "shop-v2-") {
			// graylane's own part of a canary step on Docker (docs/benchmarks.md)
			t.Logf("edit -> first v2 container created: %s", ev.At.Sub(edit).Round(time.Millisecond))
			break
		}
	}
	if f := loadgen.Failures(canarySamples); len(f) > 0 {
		t.Fatalf("%d of %d requests failed during the canary; first %+v", len(f), len(canarySamples), f[0])
	}
	t.Logf("canary: %d requests through the proxy, 0 failed", len(canarySamples))
	judgeSplit(t, wl, canarySamples, "v2", 0.05, 3)

	load = loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 6})
	g.PutSpec("shop", dockerDoc("shop", "v3", eng.Host, 3, rolling, proxy))
	waitFor(t, g, "shop", 3*time.Minute, "v3 rolled out, v2 gone", onlyVersion("v3"))
	samples := load.Stop().Samples
	if f := loadgen.Failures(samples); len(f) > 0 {
		t.Fatalf("%d of %d requests failed during the rolling update; first %+v", len(f), len(samples), f[0])
	}
	t.Logf("rolling start-first: %d requests through the proxy, 0 failed", len(samples))
}

// Blue-green on Docker behind the built-in proxy: v2 comes up at full
// size beside v1, is reachable by preview header before the switch, takes
// all traffic at once, and v1 goes after scaleDownDelay; no request fails.
func TestEndToEndDockerBlueGreenThroughProxy(t *testing.T) {
	testenv.IntegrationTest(t)
	eng := dockertest.Start(t, dockertest.Options{})
	eng.DemoImages(t, "demoapp:v1", "demoapp:v2")
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{"docker": map[string]any{"host": eng.Host, "drainDelay": "200ms"}}})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	// the preview request comes from loopback: trusted (traffic.trust)
	proxy := fmt.Sprintf("traffic:\n  type: proxy\n  proxy: {listen: \"%s\"}\n  trust: {clientIPs: [127.0.0.1]}", listen)
	bg := `  type: bluegreen
  autoPromotionDelay: 3s
  scaleDownDelay: 1s
  progressDeadline: 3m`
	g.PutSpec("bg", dockerDoc("bg", "v1", eng.Host, 2, bg, proxy))
	waitFor(t, g, "bg", 90*time.Second, "v1 healthy", onlyVersion("v1"))
	load := loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 4})
	g.PutSpec("bg", dockerDoc("bg", "v2", eng.Host, 2, bg, proxy))
	waitFor(t, g, "bg", 90*time.Second, "v2 previewed at full size", func(v engine.AppView) bool {
		ready := 0
		for _, in := range v.Status.Instances {
			if in.Version == "v2" && in.Ready {
				ready++
			}
		}
		return ready == 2 && v.Status.Weights["v1"] == 100
	})
	req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/", nil)
	req.Header.Set("X-Graylane-Version", "v2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Version") != "v2" {
		t.Fatalf("preview request served by %q, want v2", resp.Header.Get("X-Version"))
	}
	waitFor(t, g, "bg", 90*time.Second, "switched to v2, v1 gone", onlyVersion("v2"))
	samples := load.Stop().Samples
	if f := loadgen.Failures(samples); len(f) > 0 {
		t.Fatalf("%d of %d requests failed during the blue-green switch; first %+v", len(f), len(samples), f[0])
	}
	t.Logf("blue-green: %d requests through the proxy, 0 failed", len(samples))
}

// kill -9 graylane in the middle of a canary step, restart it: the
// containers are adopted, no slot's container is created or started twice,
// and the rollout completes.
func TestEndToEndDockerKillNineMidCanary(t *testing.T) {
	testenv.IntegrationTest(t)
	eng, g, listen := startDockerGraylane(t, "demoapp:v1", "demoapp:v2")
	steps := `  steps: [{setWeight: 34}, {pause: {duration: 1s}}, {setWeight: 67}, {pause: {}}, {setWeight: 100}]
  scaleDownDelay: 1s`
	evlog := eng.WatchEvents(t, docker.LabelApp+"=cart")
	g.PutSpec("cart", dockerDoc("cart", "v1", eng.Host, 3, steps, nginxTraffic(listen)))
	waitFor(t, g, "cart", 90*time.Second, "v1 healthy", onlyVersion("v1"))
	g.PutSpec("cart", dockerDoc("cart", "v2", eng.Host, 3, steps, nginxTraffic(listen)))
	waitFor(t, g, "cart", 60*time.Second, "canary's first container exists", func(v engine.AppView) bool {
		for _, in := range v.Status.Instances {
			if in.Version == "v2" {
				return true
			}
		}
		return false
	})
	g.Kill()
	g.Restart()
	paused := waitFor(t, g, "cart", 90*time.Second, "paused at the pause step after the restart", func(v engine.AppView) bool {
		for _, in := range v.Status.Instances {
			if !in.Ready {
				return false
			}
		}
		return v.Status.Phase == rollout.Paused && v.Status.Step == 3 && len(v.Status.Instances) > 0
	})
	containers := map[string]string{}
	for _, in := range paused.Status.Instances {
		containers[in.ID] = in.Meta[docker.MetaContainer]
	}
	g.Kill()
	g.Restart()
	again := waitFor(t, g, "cart", 60*time.Second, "instances back after the second restart", func(v engine.AppView) bool {
		ready := 0
		for _, in := range v.Status.Instances {
			if in.Ready {
				ready++
			}
		}
		return ready == len(containers)
	})
	if again.Status.Step != 3 || again.Status.Phase != rollout.Paused {
		t.Fatalf("the restart moved the release: %+v", again.Status.Status)
	}
	for _, in := range again.Status.Instances {
		if containers[in.ID] != in.Meta[docker.MetaContainer] || in.Meta[docker.MetaAdopted] != "true" {
			t.Fatalf("%s runs container %s (adopted %s), was %s", in.ID, in.Meta[docker.MetaContainer], in.Meta[docker.MetaAdopted], containers[in.ID])
		}
	}
	if _, err := g.Client().Command(context.Background(), "cart", rollout.CmdPromote); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "cart", 90*time.Second, "v2 healthy after promote", onlyVersion("v2"))
	evs := evlog.Events(t)
	creates, starts := dockertest.Count(evs, "create"), dockertest.Count(evs, "start")
	for name, n := range creates {
		if n != 1 || starts[name] != 1 {
			t.Errorf("slot %s: created %d times, started %d times; want once each", name, n, starts[name])
		}
	}
	if len(creates) != 6 {
		t.Errorf("want 6 slots (3 v1, 3 v2), got %v", creates)
	}
}

// A v3 whose container exits at start: the step fails with the engine's
// (and the app's) message at once, autoRollback returns all traffic to
// v2, and v2 never stops serving.
func TestEndToEndDockerExitAtStartRollsBack(t *testing.T) {
	testenv.IntegrationTest(t)
	eng, g, listen := startDockerGraylane(t, "demoapp:v2")
	eng.CrashImages(t, "demoapp:v3") // the broken build
	steps := `  steps: [{setWeight: 25}, {pause: {duration: 2s}}, {setWeight: 100}]
  autoRollback: true
  progressDeadline: 5m`
	g.PutSpec("pay", dockerDoc("pay", "v2", eng.Host, 2, steps, nginxTraffic(listen)))
	before := waitFor(t, g, "pay", 90*time.Second, "v2 healthy", onlyVersion("v2"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var events []string
	go g.Client().Watch(ctx, "pay", func(m engine.Message) bool {
		if m.Event != nil {
			mu.Lock()
			events = append(events, m.Event.Reason+": "+m.Event.Message)
			mu.Unlock()
		}
		return true
	})
	load := loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 4})
	start := time.Now()
	g.PutSpec("pay", dockerDoc("pay", "v3", eng.Host, 2, steps, nginxTraffic(listen)))
	v := waitFor(t, g, "pay", 2*time.Minute, "v3 rolled back", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.RolledBack && v.Status.RejectedVersion == "v3" && v.Status.StableVersion == "v2"
	})
	took := time.Since(start)
	waitFor(t, g, "pay", 60*time.Second, "v3 containers removed", onlyInstancesOf("v2"))
	samples := load.Stop().Samples
	if f := loadgen.Failures(samples); len(f) > 0 {
		t.Fatalf("%d of %d requests failed while v3 failed; first %+v", len(f), len(samples), f[0])
	}
	if n := len(samples); n == 0 || samples[n-1].Version != "v2" {
		t.Fatalf("traffic is not back on v2: %d samples", n)
	}
	if v.Status.Weights["v2"] != 100 {
		t.Fatalf("weights after the rollback: %v", v.Status.Weights)
	}
	after, _ := g.Client().App(ctx, "pay")
	ids := map[string]string{}
	for _, in := range before.Status.Instances {
		ids[in.ID] = in.Meta[docker.MetaContainer]
	}
	for _, in := range after.Status.Instances {
		if ids[in.ID] != in.Meta[docker.MetaContainer] {
			t.Fatalf("v2's container %s was replaced", in.ID)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	found := ""
	for _, e := range events {
		// The engine reports the container as exited, or (when the health
		// check ran first, on a loaded machine) as failing its checks; either
		// way the container's own last words must reach the event.
		engineSaid := strings.Contains(e, "exited with code 1") || strings.Contains(e, "keeps failing")
		if strings.HasPrefix(e, "ProgressDeadlineExceeded") && engineSaid && strings.Contains(e, "--config-files needs a source") {
			found = e
		}
	}
	if found == "" {
		t.Fatalf("no ProgressDeadlineExceeded event with the engine's message; events %q", events)
	}
	t.Logf("rolled back %s after the edit (progress deadline 5m): %s", took.Round(100*time.Millisecond), found)
}
