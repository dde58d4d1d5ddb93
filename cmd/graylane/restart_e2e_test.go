package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestEndToEndRestartUnderLoadStaysInPersistedSplit: a graylane killed
// and restarted under load never routes a request to a version outside
// the persisted split (issue 13). v2 is promoted while v1 keeps its
// instances for scaleDownDelay (10 m) at weight 0; through three kill -9
// and restarts with requests flowing, no answer may come from v1.
// Requests may fail while graylane (and its built-in proxy) is down; only
// the versions of successful answers are judged.
func TestEndToEndRestartUnderLoadStaysInPersistedSplit(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	proxy := testenv.FreePort(t)
	steps := `  type: canary
  steps:
    - setWeight: 50
    - setWeight: 100
  scaleDownDelay: 10m`
	g.PutSpec("cart", releaseDoc("cart", "v1", proxy, steps))
	waitFor(t, g, "cart", 60*time.Second, "v1 healthy", healthyAt("v1"))
	g.PutSpec("cart", releaseDoc("cart", "v2", proxy, steps))
	promoted := waitFor(t, g, "cart", 90*time.Second, "v2 promoted, v1 kept at 0%", func(v engine.AppView) bool {
		ready := map[string]int{}
		for _, in := range v.Status.Instances {
			if in.Ready {
				ready[in.Version]++
			}
		}
		return healthyAt("v2")(v) && ready["v1"] == 4 && ready["v2"] == 4
	})
	if w := promoted.Status.Weights; len(w) != 1 || w["v2"] != 100 {
		t.Fatalf("persisted split %v, want v2:100", w)
	}

	load := loadgen.Start(t, loadgen.Config{URL: fmt.Sprintf("http://127.0.0.1:%d/", proxy), Workers: 6})
	for i := range 3 {
		time.Sleep(500 * time.Millisecond) // requests flowing before the kill
		g.Kill()
		g.Restart()
		waitFor(t, g, "cart", 60*time.Second, fmt.Sprintf("status back after restart %d", i+1), func(v engine.AppView) bool {
			ready := 0
			for _, in := range v.Status.Instances {
				if in.Ready {
					ready++
				}
			}
			return healthyAt("v2")(v) && ready == 8
		})
	}
	time.Sleep(time.Second)
	samples := load.Stop().Samples

	served := map[string]int{}
	failed := 0
	for _, s := range samples {
		if s.Err != "" {
			failed++
			continue
		}
		served[s.Version]++
	}
	t.Logf("%d requests through three restarts: served %v, %d failed while graylane was down", len(samples), served, failed)
	if served["v2"] == 0 {
		t.Fatalf("no request was served by v2: %v", served)
	}
	for v, n := range served {
		if v != "v2" {
			t.Errorf("%d requests were served by %s, outside the persisted split v2:100", n, v)
		}
	}
	if _, err := g.Client().App(context.Background(), "cart"); err != nil {
		t.Fatal(err)
	}
}

// A graceful stop (Ctrl-C, SIGTERM) while the console has an event stream
// open ends the stream and exits 0: the streams used to hold the HTTP
// shutdown until its 5 s deadline and graylane then exited 1.
func TestGracefulStopWithEventStreamsOpen(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, path := range []string{"/api/v1/events", "/api/v1/events?events=1"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.APIURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET %s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		// the first event is there: the stream is being served
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	if err := g.StopStatus(); err != nil {
		t.Fatalf("graylane stopped with event streams open: %v\n%s", err, g.LogTail(20))
	}
}
