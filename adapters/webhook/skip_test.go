package webhook_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/webhook"
	"github.com/graylane/graylane/traffic"
)

// settableClock is a clock a test moves by hand.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *settableClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// An unchanged desired state that the deploy system reports as met is
// not POSTed again until the re-assert period; a new state, a status that
// does not match, or another fencing token is POSTed at once.
func TestApplySkipsAMetDesiredStateUntilReassert(t *testing.T) {
	s := newSystem(t)
	clk := &settableClock{now: time.Unix(1_700_000_000, 0)}
	b, err := webhook.New(webhook.Config{
		Getenv:   func(k string) string { return map[string]string{"DEPLOY_SECRET": secret}[k] },
		Reassert: 10 * time.Minute, Clock: clk, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rel := s.release(t, "v1", "")
	want := traffic.Replicas{"v1": 2}
	pass := func(be adapters.Backend, want traffic.Replicas) {
		t.Helper()
		if _, err := be.Observe(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
		if err := be.Apply(ctx, rel, want, adapters.NoStep); err != nil {
			t.Fatal(err)
		}
	}
	posts := func() int { return len(s.postsCopy()) }

	pass(b, want) // the system already runs v1=2, but nothing was delivered yet
	if n := posts(); n != 1 {
		t.Fatalf("first pass: %d POSTs, want 1", n)
	}
	for i := 0; i < 5; i++ {
		pass(b, want)
	}
	if n := posts(); n != 1 {
		t.Fatalf("5 passes over a met desired state: %d POSTs, want still 1", n)
	}

	// the deploy system loses an instance: the state is not met, POST again
	s.mu.Lock()
	s.running = map[string]int{"v1": 1}
	s.seenKeys = map[string]bool{} // it forgot the key too, so it acts on the next POST
	s.mu.Unlock()
	pass(b, want)
	if n := posts(); n != 2 {
		t.Fatalf("status short of the desired state: %d POSTs, want 2", n)
	}
	pass(b, want) // met again
	if n := posts(); n != 2 {
		t.Fatalf("met again: %d POSTs, want 2", n)
	}

	// the periodic re-assert
	clk.add(10 * time.Minute)
	pass(b, want)
	if n := posts(); n != 3 {
		t.Fatalf("after the re-assert period: %d POSTs, want 3", n)
	}

	// a new desired state
	pass(b, traffic.Replicas{"v1": 3})
	if n := posts(); n != 4 {
		t.Fatalf("new desired state: %d POSTs, want 4", n)
	}
	pass(b, traffic.Replicas{"v1": 3})
	if n := posts(); n != 4 {
		t.Fatalf("new state met: %d POSTs, want 4", n)
	}

	// another replica's fence (the app changed hands): POST, with headers
	fb := b.WithFence(adapters.Fence{Holder: "replica-b", Token: 42})
	var got http.Header
	s.mu.Lock()
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool { got = r.Header.Clone(); return false }
	s.mu.Unlock()
	pass(fb, traffic.Replicas{"v1": 3})
	if n := posts(); n != 5 {
		t.Fatalf("new fencing token: %d POSTs, want 5", n)
	}
	if got.Get(webhook.HeaderFencingToken) != "42" || got.Get(webhook.HeaderReplica) != "replica-b" {
		t.Fatalf("fence headers: token %q, replica %q", got.Get(webhook.HeaderFencingToken), got.Get(webhook.HeaderReplica))
	}
	pass(fb, traffic.Replicas{"v1": 3})
	if n := posts(); n != 5 {
		t.Fatalf("same fence, met: %d POSTs, want 5", n)
	}

	// unloaded (the app moved to another replica and back): POST again
	b.Unload("demo")
	pass(fb, traffic.Replicas{"v1": 3})
	if n := posts(); n != 6 {
		t.Fatalf("after Unload: %d POSTs, want 6", n)
	}
}

// A failed POST is never taken as delivered.
func TestApplyAfterAFailedPostPostsAgain(t *testing.T) {
	s := newSystem(t)
	b := newBackend(t)
	ctx := context.Background()
	rel := s.release(t, "v1", "")
	s.mu.Lock()
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 0 {
			http.Error(w, "rejected", http.StatusBadRequest) // not retried
			return true
		}
		return false
	}
	s.mu.Unlock()
	if _, err := b.Observe(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 2}, adapters.NoStep); err == nil {
		t.Fatal("the first POST failed, Apply did not")
	}
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 2}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	if n := len(s.postsCopy()); n != 2 {
		t.Fatalf("%d POSTs, want 2 (the failed one is retried by the next Apply)", n)
	}
}
