package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/server"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkRollbackToRevision measures a rollback to a kept revision of an
// app of 10 instances on the process backend behind the built-in proxy:
//
//   - running: the target is the previous version, still running within
//     scaleDownDelay: from the request to every request through the proxy
//     answered by the target (20 in a row);
//   - scaled-away: the target was scaled to zero: from the request to the
//     app Healthy on it (10 instances started and health-checked).
//
// Each iteration releases two new versions first (a canary promoted at
// once). Run: GRAYLANE_INTEGRATION=1 go test -run '^$' -bench
// RollbackToRevision -benchtime 3x ./cmd/graylane
func BenchmarkRollbackToRevision(b *testing.B) {
	testenv.IntegrationTest(b)
	for _, mode := range []string{"running", "scaled-away"} {
		b.Run(mode, func(b *testing.B) {
			proxy := testenv.FreePort(b)
			g := graylanetest.Start(b, graylanetest.Options{})
			c := g.Client()
			ctx := context.Background()
			delay := "5m"
			if mode == "scaled-away" {
				delay = "0s"
			}
			doc := func(v string) []byte {
				return []byte(fmt.Sprintf(`app: bench
version: %s
replicas: 10
strategy: {steps: [{setWeight: 50}], scaleDownDelay: %s}
backend:
  type: process
  process: {command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"], proxy: "127.0.0.1:%d", stopGracePeriod: 2s}
health: {path: /healthz, interval: 100ms}
`, v, delay, proxy))
			}
			healthy := func(v string) {
				testenv.Eventually(b, 120*time.Second, v+" healthy", func() error {
					view, err := c.App(ctx, "bench")
					if err != nil {
						return err
					}
					ok := healthyAt(v)(view)
					if ok && mode == "scaled-away" {
						for _, in := range view.Status.Instances {
							ok = ok && in.Version == v
						}
					}
					return testenv.Check(ok, "status %+v", view.Status)
				})
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				a, z := fmt.Sprintf("a%d", i), fmt.Sprintf("z%d", i)
				for _, v := range []string{a, z} {
					if err := c.PutSpec(ctx, "bench", doc(v)); err != nil {
						b.Fatal(err)
					}
					healthy(v)
				}
				revs, err := c.Revisions(ctx, "bench")
				if err != nil {
					b.Fatal(err)
				}
				target := revs[1].Number // a's revision
				start := time.Now()
				if _, err := c.RollbackTo(ctx, "bench", server.RollbackRequest{Revision: &target}); err != nil {
					b.Fatal(err)
				}
				if mode == "running" {
					allFrom(b, proxy, a)
				} else {
					healthy(a)
				}
				total += time.Since(start)
				if v, _ := c.App(ctx, "bench"); v.Status.Phase != rollout.Healthy && mode == "running" {
					healthy(a)
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/rollback")
		})
	}
}

// allFrom waits until 20 requests in a row through the proxy are answered
// by version v.
func allFrom(b *testing.B, port int, v string) {
	b.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(60 * time.Second)
	inARow := 0
	for inARow < 20 {
		if time.Now().After(deadline) {
			b.Fatalf("traffic never all on %s", v)
		}
		resp, err := http.Get(url)
		if err != nil {
			inARow = 0
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), v) {
			inARow++
		} else {
			inARow = 0
		}
	}
}
