package server

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// countingInstant counts Observe calls.
type countingInstant struct {
	*instant
	observes atomic.Int64
}

func (c *countingInstant) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	c.observes.Add(1)
	return c.instant.Observe(ctx, app)
}

// The observe callback needs a write token, is audited, answers 404 for
// an unknown app and 202 otherwise, and brings a pass over the app at
// once — long before its timed pass (here an hour away).
func TestObserveCallback(t *testing.T) {
	src := memory.New()
	be := &countingInstant{instant: &instant{want: map[string]traffic.Replicas{}}}
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: resolverOf{be},
		Resync: time.Hour, IdleResync: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eng.Run(ctx)
	tokens := []Token{{Name: "deployer", Secret: "s3cret-w", Role: RoleWrite}, {Name: "viewer", Secret: "s3cret-r", Role: RoleRead}}
	s := New(Config{Engine: eng, Source: src, Writer: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tokens: tokens})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	e := &env{t: t, src: src, eng: eng, url: ts.URL}
	src.Set("demo", []byte(goodSpec))
	// wait without triggering passes: the pass that makes the app Healthy
	// observed before it saved, and the next timed pass is an hour away,
	// so from here on only the callback brings a pass
	testenv.Eventually(t, 10*time.Second, "demo Healthy", func() error {
		v, err := eng.App(ctx, "demo")
		if err != nil {
			return err
		}
		return testenv.Check(v.Status.Phase == "Healthy", "phase %s", v.Status.Phase)
	})

	sub, stop := eng.Broker().Subscribe("demo")
	defer stop()
	if code, _ := e.doAs("", "POST", "/api/v1/apps/demo/observe", ""); code != 401 {
		t.Fatalf("without a token: %d", code)
	}
	if code, _ := e.doAs("s3cret-r", "POST", "/api/v1/apps/demo/observe", ""); code != 403 {
		t.Fatalf("with a read token: %d", code)
	}
	if code, _ := e.doAs("s3cret-w", "POST", "/api/v1/apps/ghost/observe", ""); code != 404 {
		t.Fatalf("unknown app: %d", code)
	}
	before := be.observes.Load()
	if code, body := e.doAs("s3cret-w", "POST", "/api/v1/apps/demo/observe", ""); code != 202 || body["observe"] != "queued" {
		t.Fatalf("observe: %d %v", code, body)
	}
	deadline := time.After(10 * time.Second)
	audited := false
	for !audited || be.observes.Load() == before {
		select {
		case m := <-sub:
			if m.Event != nil && m.Event.Reason == "Audit" {
				if m.Event.Message != "deployer: observe callback (ok)" {
					t.Fatalf("audit event %q", m.Event.Message)
				}
				audited = true
			}
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after the callback: audited %v, backend observed %d times (%d before)", audited, be.observes.Load(), before)
		}
	}
}

type resolverOf struct{ b adapters.Backend }

func (r resolverOf) Backend(*spec.Release) (adapters.Backend, error)      { return r.b, nil }
func (r resolverOf) Router(*spec.Release) (adapters.TrafficRouter, error) { return nil, nil }
