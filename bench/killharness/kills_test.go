//go:build killharness

package killharness

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
)

var kills = flag.Int("kills", 100, "how many times to SIGKILL graylane")

func spec(version string, port int) string {
	return fmt.Sprintf(`app: shop
version: %s
replicas: 2
strategy:
  steps: [{setWeight: 25}, {pause: {duration: 1s}}, {setWeight: 50}, {pause: {duration: 1s}}, {setWeight: 75}, {pause: {duration: 1s}}, {setWeight: 100}]
  scaleDownDelay: 3s
backend:
  type: process
  process: {command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"], proxy: 127.0.0.1:%d, stopGracePeriod: 5s}
health: {path: /healthz, interval: 200ms}
`, version, port)
}

// TestKills runs canaries v2, v3, ... one after another and SIGKILLs
// graylane at a random moment of each (sometimes twice), restarting it at
// once, until -kills kills. Every canary must complete.
func TestKills(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	port := testenv.FreePort(t)
	g.PutSpec("shop", spec("v1", port))
	waitHealthy(t, g, "v1", 60*time.Second)
	load := loadgen.Start(t, loadgen.Config{URL: fmt.Sprintf("http://127.0.0.1:%d/", port), Workers: 6})
	start := time.Now()
	healthyAt := map[int]time.Time{1: time.Now()} // version k -> when it became the only routed version
	done, canaries := 0, 0
	var downs []time.Duration
	for k := 2; done < *kills; k++ {
		version := "v" + strconv.Itoa(k)
		g.PutSpec("shop", spec(version, port))
		canaries++
		n := 1 + rand.IntN(2)
		for i := 0; i < n && done < *kills; i++ {
			time.Sleep(time.Duration(rand.IntN(3500)) * time.Millisecond)
			down := time.Now()
			g.Kill()
			done++
			g.Restart()
			downs = append(downs, time.Since(down))
		}
		healthyAt[k] = waitHealthy(t, g, version, 120*time.Second)
		if done%10 == 0 || done >= *kills {
			t.Logf("%d kills, %d canaries, %s", done, canaries, time.Since(start).Round(time.Second))
		}
	}
	samples := load.Stop().Samples
	failed, outside := 0, 0
	var firstFail string
	for _, s := range samples {
		if s.Err != "" {
			failed++
			if firstFail == "" {
				firstFail = s.Err
			}
			continue
		}
		v, _ := strconv.Atoi(strings.TrimPrefix(s.Version, "v"))
		// v was superseded once v+1 became the only routed version
		if at, ok := healthyAt[v+1]; ok && s.At.After(at.Add(100*time.Millisecond)) {
			outside++
		}
	}
	sort.Slice(downs, func(i, j int) bool { return downs[i] < downs[j] })
	t.Logf("RESULT: %d SIGKILLs of graylane over %d canaries in %s; %d requests through the proxy, %d failed, %d to a version outside the split; graylane down (kill to ready again) median %s, longest %s",
		done, canaries, time.Since(start).Round(time.Second), len(samples), failed, outside, downs[len(downs)/2].Round(time.Millisecond), downs[len(downs)-1].Round(time.Millisecond))
	if failed > 0 || outside > 0 {
		t.Errorf("goal missed: %d failed (first: %s), %d outside the split", failed, firstFail, outside)
	}
}

// waitHealthy waits until version is the stable version and returns when
// it was first seen so.
func waitHealthy(t *testing.T, g *graylanetest.Graylane, version string, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		v, err := g.Client().App(context.Background(), "shop")
		if err == nil && v.Status.Phase == rollout.Healthy && v.Status.StableVersion == version && v.Status.CanaryVersion == "" {
			return time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not become healthy within %s", version, d)
	return time.Time{}
}
