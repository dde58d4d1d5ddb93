package webhook_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/webhook"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// webhookOnly resolves every release to one webhook backend and no router:
// traffic follows instance counts (traffic.type none, the webhook default).
type webhookOnly struct{ b adapters.Backend }

func (r webhookOnly) Backend(*spec.Release) (adapters.Backend, error)      { return r.b, nil }
func (r webhookOnly) Router(*spec.Release) (adapters.TrafficRouter, error) { return nil, nil }

// TestEngineNoRouterPromotionNeverGrowsTheOldVersion drives graylane's real
// engine through a canary on the webhook backend, against a deploy system
// over HTTP. With no router, the desired state it is sent must never give
// the old version more instances once the new one is at full size (issue
// 13: v1:2,v2:4 -> v1:4,v2:4 -> v2:4, half of the users back on v1 for
// scaleDownDelay), and the old version goes away at once although
// scaleDownDelay is 30s.
func TestEngineNoRouterPromotionNeverGrowsTheOldVersion(t *testing.T) {
	s := newSystem(t)
	s.mu.Lock()
	s.running = map[string]int{}
	s.mu.Unlock()
	b := newBackend(t)
	src := memory.New()
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: webhookOnly{b}, Resync: 100 * time.Millisecond, Logger: testLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	doc := func(v string) []byte {
		return []byte(fmt.Sprintf(`
app: demo
version: %s
replicas: 4
strategy:
  type: canary
  steps: [{setWeight: 50}, {pause: {duration: 200ms}}]
  scaleDownDelay: 30s
health: {interval: 20ms}
backend:
  type: webhook
  webhook: {url: %s/deploy, statusURL: "%s/apps/{{.App}}/status", secretEnv: DEPLOY_SECRET}
`, v, s.srv.URL, s.srv.URL))
	}
	healthy := func(v string) func() error {
		return func() error {
			a, err := eng.App(ctx, "demo")
			if err != nil {
				return err
			}
			return testenv.Check(a.Status.Phase == rollout.Healthy && a.Status.StableVersion == v, "phase %s stable %s", a.Status.Phase, a.Status.StableVersion)
		}
	}
	src.Set("demo", doc("v1"))
	testenv.Eventually(t, 10*time.Second, "v1 healthy", healthy("v1"))
	from := len(s.postsCopy())
	src.Set("demo", doc("v2"))
	start := time.Now()
	testenv.Eventually(t, 10*time.Second, "v2 healthy", healthy("v2"))
	testenv.Eventually(t, 10*time.Second, "the deploy system running v2:4 only", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		return testenv.Check(s.running["v1"] == 0 && s.running["v2"] == 4, "running %v", s.running)
	})
	took := time.Since(start)

	posts := s.postsCopy()[from:]
	promoted, oldAtPromotion, v1Seen := -1, 0, false
	for i, p := range posts {
		r := p.state.Replicas
		v1Seen = v1Seen || r["v1"] > 0
		if promoted < 0 && r["v2"] == 4 {
			promoted, oldAtPromotion = i, r["v1"]
			continue
		}
		if promoted >= 0 && r["v1"] > oldAtPromotion {
			t.Fatalf("POST %d after the promotion (POST %d, v1:%d) asks for v1:%d: the old version grows back; posts: %v", i, promoted, oldAtPromotion, r["v1"], replicasOf(posts))
		}
	}
	if promoted < 0 || !v1Seen || oldAtPromotion >= 4 {
		t.Fatalf("no canary seen (promotion at POST %d with v1:%d); posts: %v", promoted, oldAtPromotion, replicasOf(posts))
	}
	if last := posts[len(posts)-1].state.Replicas; last["v1"] != 0 || last["v2"] != 4 {
		t.Fatalf("last desired state %v, want v2:4 only", last)
	}
	if took >= 30*time.Second {
		t.Fatalf("v1 went away after %v: scaleDownDelay applied without a router", took)
	}
	t.Logf("desired states sent during the canary: %v", replicasOf(posts))
}

func replicasOf(ps []post) []map[string]int {
	out := make([]map[string]int, len(ps))
	for i, p := range ps {
		out[i] = p.state.Replicas
	}
	return out
}

// errorCounter is a slog handler that counts records at ERROR and above.
type errorCounter struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (h errorCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h errorCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
		h.mu.Lock()
		*h.msgs = append(*h.msgs, msg)
		h.mu.Unlock()
	}
	return nil
}
func (h errorCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h errorCounter) WithGroup(string) slog.Handler      { return h }

// TestEngineNewAppIsNotAnError: the first pass over a new app asks the
// webhook backend to observe it before graylane has persisted its spec;
// the backend looks the release up (Config.Releases = Engine.Release) and
// must find the app's document, not fail. Issue 13: every new app logged
// "reconcile failed ... has no valid spec yet", emitted ReconcileFailed
// and counted graylane_reconcile_total{result="error"}.
func TestEngineNewAppIsNotAnError(t *testing.T) {
	s := newSystem(t)
	s.mu.Lock()
	s.running = map[string]int{}
	s.mu.Unlock()
	var mu sync.Mutex
	var errs []string
	log := slog.New(errorCounter{mu: &mu, msgs: &errs})
	var eng *engine.Engine
	b, err := webhook.New(webhook.Config{
		Getenv:   func(k string) string { return map[string]string{"DEPLOY_SECRET": secret}[k] },
		Releases: func(ctx context.Context, app string) (*spec.Release, error) { return eng.Release(ctx, app) },
		Logger:   log,
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	src := memory.New()
	eng = engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: webhookOnly{b}, Logger: log, Metrics: engine.NewMetrics(reg)})
	events, unsubscribe := eng.Broker().Subscribe("")
	defer unsubscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// a new app (the fake deploy system serves the status of "demo")
	src.Set("demo", []byte(fmt.Sprintf(`
app: demo
version: v1
replicas: 2
backend:
  type: webhook
  webhook: {url: %s/deploy, statusURL: "%s/apps/{{.App}}/status", secretEnv: DEPLOY_SECRET}
`, s.srv.URL, s.srv.URL)))
	testenv.Eventually(t, 10*time.Second, "v1 healthy", func() error {
		a, err := eng.App(ctx, "demo")
		if err != nil {
			return err
		}
		return testenv.Check(a.Status.Phase == rollout.Healthy && a.Status.StableVersion == "v1", "phase %s stable %s", a.Status.Phase, a.Status.StableVersion)
	})
	var failed []string
	for {
		select {
		case m := <-events:
			if m.Kind == "event" && m.Event.Reason == "ReconcileFailed" {
				failed = append(failed, m.Event.Message)
			}
			continue
		default:
		}
		break
	}
	if len(failed) > 0 {
		t.Errorf("ReconcileFailed events for new apps: %q", failed)
	}
	mu.Lock()
	if len(errs) > 0 {
		t.Errorf("ERROR logs for new apps: %q", errs)
	}
	mu.Unlock()
	if n := reconcileErrors(t, reg); n != 0 {
		t.Errorf(`graylane_reconcile_total{result="error"} = %v, want 0`, n)
	}
}

func reconcileErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "graylane_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "error" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
