package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/webhook"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// countingSystem is a minimal deploy system over real HTTP that counts the
// TCP connections graylane opens to it. It answers after delay, as a real
// one does, so that the workers' requests overlap.
type countingSystem struct {
	srv    *httptest.Server
	opened atomic.Int64
}

func newCountingSystem(tb testing.TB, delay time.Duration) *countingSystem {
	c := &countingSystem{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		_ = json.NewEncoder(w).Encode(webhook.Status{App: "demo", Instances: []adapters.Instance{{ID: "demo-v1-0", Version: "v1", Ready: true}}})
	}))
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.opened.Add(1)
		}
	}
	c.srv.Start()
	tb.Cleanup(c.srv.Close)
	return c
}

func (c *countingSystem) release(tb testing.TB) *spec.Release {
	rel, err := spec.Parse([]byte(fmt.Sprintf(`
app: demo
version: v1
backend:
  type: webhook
  webhook: {url: %s/deploy, statusURL: "%s/apps/{{.App}}/status", secretEnv: DEPLOY_SECRET}
`, c.srv.URL, c.srv.URL)))
	if err != nil {
		tb.Fatal(err)
	}
	return rel
}

// drive sends n Apply+Observe pairs from workers goroutines at once, as the
// engine's workers do, each pausing think between pairs (planning, saving
// state): connections then sit idle now and then, which is when a pool
// that keeps too few closes them.
func drive(tb testing.TB, b *webhook.Backend, rel *spec.Release, workers, n int, think time.Duration) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				want := traffic.Replicas{"v1": int(i%7) + 1}
				if err := b.Apply(context.Background(), rel, want, adapters.NoStep); err != nil {
					tb.Error(err)
					return
				}
				if _, err := b.Observe(context.Background(), "demo"); err != nil {
					tb.Error(err)
					return
				}
				time.Sleep(think)
			}
		}()
	}
	wg.Wait()
}

func backendWith(tb testing.TB, client *http.Client) *webhook.Backend {
	b, err := webhook.New(webhook.Config{Client: client, Getenv: func(string) string { return secret }})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestConnectionsAreReused: 8 workers sending 400 desired states and 400
// status reads (1 ms apart) to a system answering in 2 ms keep reusing their
// connections (issue 13: the default client kept 2 idle connections per
// host, so with 4+ workers most requests opened a new connection and left
// one in TIME_WAIT). net/http may dial a few more than there are workers
// (a request starts dialing just before a connection comes back), so the
// bound is twice the workers; without reuse it is hundreds.
func TestConnectionsAreReused(t *testing.T) {
	c := newCountingSystem(t, 2*time.Millisecond)
	b := backendWith(t, nil)
	drive(t, b, c.release(t), 8, 400, time.Millisecond)
	if n := c.opened.Load(); n > 16 {
		t.Fatalf("8 workers opened %d connections for 800 requests, want at most 16 (reused)", n)
	}
}

// BenchmarkConnections reports the TCP connections opened per request by
// 8 concurrent workers (1 ms between pairs) against a system answering in
// 1 ms, with the
// backend's default client (tuned) and with a plain http.Client (net/http's
// default transport: 2 idle per host), as the backend had before. Every
// connection opened and closed by graylane ends in TIME_WAIT on its side.
func BenchmarkConnections(b *testing.B) {
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"tuned", nil},
		{"plain-default-transport", &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCountingSystem(b, time.Millisecond)
			be := backendWith(b, tc.client)
			rel := c.release(b)
			b.ResetTimer()
			start := time.Now()
			drive(b, be, rel, 8, b.N, time.Millisecond)
			b.StopTimer()
			reqs := float64(2 * b.N)
			b.ReportMetric(float64(c.opened.Load())/reqs, "conns/req")
			b.ReportMetric(reqs/time.Since(start).Seconds(), "req/s")
		})
	}
}
