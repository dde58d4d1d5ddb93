package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
)

// chainDoc is one app of the chain svc-a -> svc-b -> svc-c on the process
// backend: demoapps registering through the SDK. svc-a is routed by the
// built-in proxy (the edge), svc-b and svc-c by their gray documents.
func chainDoc(app, version, etcd, calls string, proxyPort int) string {
	callFlag, traffic := "", "traffic: {type: gray}"
	if calls != "" {
		callFlag = `, "--gray-calls=` + calls + `"`
	}
	if proxyPort != 0 {
		traffic = fmt.Sprintf("traffic: {type: proxy, proxy: {listen: \"127.0.0.1:%d\"}}", proxyPort)
	}
	return fmt.Sprintf(`app: %s
version: %s
replicas: 1
strategy:
  steps: [{setWeight: 20}, {pause: {}}, {setWeight: 50}, {pause: {}}, {setWeight: 100}]
  scaleDownDelay: 1s
backend:
  type: process
  process:
    command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}", "--gray-etcd=%s", "--gray-app=%s"%s]
    stopGracePeriod: 5s
%s
health: {path: /healthz, interval: 200ms}
`, app, version, etcd, app, callFlag, traffic)
}

// chainUsers sends one request per user through the edge and returns, per
// user, the version of each hop ("svc-a=v2,svc-b=v2,svc-c=v2").
func chainUsers(t *testing.T, edge string, users int) map[int]map[string]string {
	t.Helper()
	out := make(map[int]map[string]string, users)
	var mu sync.Mutex
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for u := w; u < users; u += 8 {
				req, _ := http.NewRequest(http.MethodGet, edge+"/chain", nil)
				req.Header.Set("X-Gray-User", fmt.Sprintf("user-%d", u))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("user-%d: %s %s", u, resp.Status, b)
					return
				}
				hops := map[string]string{}
				for _, hop := range strings.Split(string(b), ",") {
					app, v, _ := strings.Cut(hop, "=")
					hops[app] = v
				}
				mu.Lock()
				out[u] = hops
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return out
}

// TestEndToEndChainFollowsTheEdge: a chain svc-a -> svc-b -> svc-c on the
// process backend, svc-a behind the built-in proxy, svc-b and svc-c
// following their gray documents through the SDK, all with the default
// salt, under load. With every hop at 20% and then at 50%, every user has
// the same version at every hop; with the edge at 20% and the downstream
// services at 50%, every user on the canary at the edge is on the canary
// downstream. No request fails.
func TestEndToEndChainFollowsTheEdge(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	etcd := "http://" + g.EtcdAddr
	port := testenv.FreePort(t)
	edge := fmt.Sprintf("http://127.0.0.1:%d", port)
	apps := []struct{ app, calls string }{{"svc-c", ""}, {"svc-b", "svc-c"}, {"svc-a", "svc-b"}}
	put := func(version string) {
		for _, a := range apps {
			p := 0
			if a.app == "svc-a" {
				p = port
			}
			g.PutSpec(a.app, chainDoc(a.app, version, etcd, a.calls, p))
		}
	}
	put("v1")
	for _, a := range apps {
		waitFor(t, g, a.app, 90*time.Second, a.app+" v1 healthy", healthyAt("v1"))
	}
	load := loadgen.Start(t, loadgen.Config{URL: edge + "/chain", Workers: 4})

	put("v2")
	pausedAt := func(app string, step, weight int) {
		waitFor(t, g, app, 90*time.Second, fmt.Sprintf("%s paused at %d%%", app, weight), func(v engine.AppView) bool {
			return v.Status.Phase == rollout.Paused && v.Status.Step == step && v.Status.Weights["v2"] == weight
		})
	}
	promote := func(app string) {
		if _, err := g.Client().Command(context.Background(), app, rollout.CmdPromote); err != nil {
			t.Fatal(err)
		}
	}
	// the SDK services follow a document a moment after it is published:
	// poll a sample of users until every hop routes at the new weights
	settle := func(edgeW, downW int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ok := true
			for u, hops := range chainUsers(t, edge, 200) {
				b, _ := gray.Bucket(spec.DefaultGraySalt, fmt.Sprintf("user-%d", u))
				ok = ok && hops["svc-a"] == map[bool]string{true: "v2", false: "v1"}[b < edgeW*100] &&
					hops["svc-c"] == map[bool]string{true: "v2", false: "v1"}[b < downW*100]
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the chain did not route at edge %d%%, downstream %d%% within 30s", edgeW, downW)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	sameEverywhere := func(w int) map[int]map[string]string {
		t.Helper()
		got := chainUsers(t, edge, 2000)
		on := 0
		for u, hops := range got {
			if hops["svc-a"] != hops["svc-b"] || hops["svc-b"] != hops["svc-c"] {
				t.Fatalf("at %d%% everywhere user-%d got %v", w, u, hops)
			}
			b, _ := gray.Bucket(spec.DefaultGraySalt, fmt.Sprintf("user-%d", u))
			if want := map[bool]string{true: "v2", false: "v1"}[b < w*100]; hops["svc-a"] != want {
				t.Fatalf("at %d%% user-%d (bucket %d) got %v, want %s everywhere", w, u, b, hops, want)
			}
			if hops["svc-a"] == "v2" {
				on++
			}
		}
		share := float64(on) / float64(len(got)) * 100
		t.Logf("every hop at %d%%: %d of %d users (%.1f%%) on v2 at every hop, the others on v1 at every hop", w, on, len(got), share)
		if math.Abs(share-float64(w)) > 3 {
			t.Fatalf("at %d%%: %.1f%% of users on v2", w, share)
		}
		return got
	}

	for _, a := range apps {
		pausedAt(a.app, 1, 20)
	}
	settle(20, 20)
	at20 := sameEverywhere(20)

	// downstream to 50%, the edge stays at 20%
	promote("svc-c")
	promote("svc-b")
	pausedAt("svc-c", 3, 50)
	pausedAt("svc-b", 3, 50)
	settle(20, 50)
	mixed := chainUsers(t, edge, 2000)
	edgeOn, downOn := 0, 0
	for u, hops := range mixed {
		if hops["svc-a"] == "v2" {
			edgeOn++
			if hops["svc-b"] != "v2" || hops["svc-c"] != "v2" {
				t.Fatalf("edge 20%%, downstream 50%%: user-%d is on the canary at the edge but got %v", u, hops)
			}
		}
		if hops["svc-b"] != hops["svc-c"] {
			t.Fatalf("svc-b and svc-c both at 50%%: user-%d got %v", u, hops)
		}
		if hops["svc-b"] == "v2" {
			downOn++
		}
		if at20[u]["svc-a"] != hops["svc-a"] {
			t.Fatalf("user-%d changed version at the edge (still 20%%): %s -> %s", u, at20[u]["svc-a"], hops["svc-a"])
		}
	}
	t.Logf("edge 20%%, downstream 50%%: %d users on the canary at the edge, all of them on it downstream; %d on it downstream", edgeOn, downOn)

	promote("svc-a")
	pausedAt("svc-a", 3, 50)
	settle(50, 50)
	at50 := sameEverywhere(50)
	for u, hops := range at20 {
		if hops["svc-a"] == "v2" && at50[u]["svc-a"] != "v2" {
			t.Fatalf("user-%d was on the canary at 20%% but not at 50%%", u)
		}
	}

	for _, a := range apps {
		promote(a.app)
	}
	for _, a := range apps {
		waitFor(t, g, a.app, 90*time.Second, a.app+" v2 healthy", healthyAt("v2"))
	}
	samples := load.Stop().Samples
	if f := loadgen.Failures(samples); len(f) > 0 {
		t.Fatalf("%d of %d chain requests under load failed; first %+v", len(f), len(samples), f[0])
	}
	t.Logf("%d chain requests through the proxy under load, 0 failed", len(samples))
}
