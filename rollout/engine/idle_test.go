package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// countingBackend counts what the engine asks a backend; notifying makes
// it an adapters.ChangeNotifier.
type countingBackend struct {
	*recorder
	mu              sync.Mutex
	observes, apply int
	notifying       bool
}

func (c *countingBackend) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	c.mu.Lock()
	c.observes++
	c.mu.Unlock()
	return c.recorder.Observe(ctx, app)
}

func (c *countingBackend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step adapters.Step) error {
	c.mu.Lock()
	c.apply++
	c.mu.Unlock()
	return c.recorder.Apply(ctx, rel, want, step)
}

func (c *countingBackend) counts() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d observe, %d apply", c.observes, c.apply)
}

// notifyingBackend is a countingBackend that notifies every change.
type notifyingBackend struct{ *countingBackend }

func (notifyingBackend) Notify(func(string))       {}
func (notifyingBackend) NotifiesEveryChange() bool { return true }

var _ adapters.ChangeNotifier = notifyingBackend{}

type countingResolver struct {
	be adapters.Backend
}

func (r countingResolver) Backend(*spec.Release) (adapters.Backend, error)      { return r.be, nil }
func (r countingResolver) Router(*spec.Release) (adapters.TrafficRouter, error) { return nil, nil }

// An idle app's timed pass asks nothing of a backend that notifies every
// change, and is quiet; an event pass, or a backend that cannot notify,
// is asked as before.
func TestIdleTimedPassSkipsANotifyingBackend(t *testing.T) {
	for _, notifying := range []bool{true, false} {
		t.Run(fmt.Sprintf("notifying=%v", notifying), func(t *testing.T) {
			h := newHarness(t)
			cb := &countingBackend{recorder: h.rec}
			var be adapters.Backend = cb
			if notifying {
				be = notifyingBackend{cb}
			}
			h.eng = New(Config{Source: h.src, Store: h.store, Resolver: countingResolver{be}, Clock: h.clock})
			go h.eng.watch(h.ctx)
			<-h.eng.Synced()
			h.put("demo", fmt.Sprintf(demoSpec, "v1"))
			// converge: the first release, then passes until one is quiet
			quiet := false
			for i := 0; i < 10 && !quiet; i++ {
				r, err := h.eng.sync(h.ctx, "demo", true, false)
				if err != nil {
					t.Fatal(err)
				}
				h.rec.settle("demo")
				quiet = r.quiet
			}
			if !quiet {
				t.Fatal("no quiet pass after the first release converged")
			}
			before := cb.counts()
			r, err := h.eng.sync(h.ctx, "demo", false, true) // a timed pass of an idle app
			if err != nil {
				t.Fatal(err)
			}
			if !r.quiet {
				t.Fatal("the idle timed pass was not quiet")
			}
			after := cb.counts()
			if notifying && after != before {
				t.Fatalf("timed pass of an idle app asked the notifying backend: %s before, %s after", before, after)
			}
			if !notifying && after == before {
				t.Fatalf("timed pass of an idle app did not observe a backend that cannot notify (%s)", after)
			}
			// an event always asks
			if _, err := h.eng.sync(h.ctx, "demo", true, true); err != nil {
				t.Fatal(err)
			}
			if cb.counts() == after {
				t.Fatalf("an event pass asked nothing (%s)", after)
			}
			// a crash the backend noticed (it would notify: an event pass)
			// is acted on: the missing instance is started again
			h.rec.mu.Lock()
			h.rec.instances["demo"] = h.rec.instances["demo"][:1]
			h.rec.mu.Unlock()
			r, err = h.eng.sync(h.ctx, "demo", true, true)
			if err != nil {
				t.Fatal(err)
			}
			if r.quiet {
				t.Fatal("the pass that restarted a crashed instance counted as quiet")
			}
			if n := len(h.rec.instances["demo"]); n != 2 {
				t.Fatalf("%d instances after the crash pass, want 2", n)
			}
		})
	}
}
