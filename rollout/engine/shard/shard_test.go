package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// member is one Shard running its terms in the background.
type member struct {
	*Shard
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	changed []string
}

func join(t *testing.T, cli *clientv3.Client, id string) *member {
	t.Helper()
	sh, err := New(Config{Client: cli, ID: id, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{Shard: sh, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		m.done <- sh.Term(ctx, func() { close(ready) }, func(app string) {
			m.mu.Lock()
			m.changed = append(m.changed, app)
			m.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
		}
	})
	select {
	case <-ready:
	case err := <-m.done:
		t.Fatalf("%s: term ended before it began: %v", id, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s never joined", id)
	}
	return m
}

func (m *member) sawChange(app string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.changed {
		if c == app {
			return true
		}
	}
	return false
}

func seesMembers(t *testing.T, want int, ms ...*member) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("every replica sees %d members", want), func() error {
		for _, m := range ms {
			if n := len(m.Status().Members); n != want {
				return fmt.Errorf("%s sees %d", m.ID(), n)
			}
		}
		return nil
	})
}

// Two replicas split the apps between them; an app's key is held by one at
// a time; giving it up lets the other take it with a higher token, and a
// write fenced by the old token fails.
func TestOwnershipIsExclusiveAndFenced(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	a, b := join(t, cli, "a"), join(t, cli, "b")
	seesMembers(t, 2, a, b)
	var mineA, mineB []string
	for i := 0; i < 200; i++ {
		app := fmt.Sprintf("app-%03d", i)
		switch ma, mb := a.Mine(app), b.Mine(app); {
		case ma && mb, !ma && !mb:
			t.Fatalf("%s: mine on a %v, on b %v", app, ma, mb)
		case ma:
			mineA = append(mineA, app)
		default:
			mineB = append(mineB, app)
		}
	}
	if len(mineA) < 60 || len(mineB) < 60 {
		t.Fatalf("uneven split: a %d, b %d", len(mineA), len(mineB))
	}

	app := mineA[0]
	fa, err := a.Acquire(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := a.Acquire(ctx, app); err != nil || again != fa {
		t.Fatalf("acquiring a held app again: %+v, %v (first %+v)", again, err, fa)
	}
	if _, err := b.Acquire(ctx, app); !errors.Is(err, engine.ErrHeldElsewhere) {
		t.Fatalf("b took %s while a holds it: %v", app, err)
	}
	store := etcdstore.New(cli, "")
	rev, err := store.SaveFenced(ctx, app, engine.Record{}, 0, fa)
	if err != nil {
		t.Fatalf("save fenced by the holder: %v", err)
	}

	if err := a.Release(ctx, app); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "b is told the app was given up", func() error {
		return testenv.Check(b.sawChange(app), "changes seen by b: no %s", app)
	})
	fb, err := b.Acquire(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if fb.Token <= fa.Token {
		t.Fatalf("new owner's token %d is not above the old one's %d", fb.Token, fa.Token)
	}
	if _, err := store.SaveFenced(ctx, app, engine.Record{Driver: "a"}, rev, fa); !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("a write fenced by a's old token: %v, want ErrFenced", err)
	}
	if err := store.DeleteFenced(ctx, app, rev, fa); !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("a delete fenced by a's old token: %v, want ErrFenced", err)
	}
	if _, err := store.SaveFenced(ctx, app, engine.Record{Driver: "b"}, rev, fb); err != nil {
		t.Fatalf("save fenced by the new holder: %v", err)
	}
	if _, err := store.SaveFenced(ctx, app, engine.Record{Driver: "b"}, rev, fb); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("a stale revision with a good fence: %v, want ErrConflict", err)
	}
}

// A replica whose lease is gone (revoked here, as etcd does when it
// expires) ends its term: it checks false at once, its keys are gone,
// and the other replica is told every app may have moved.
func TestLostLeaseEndsTheTerm(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	a, b := join(t, cli, "a"), join(t, cli, "b")
	seesMembers(t, 2, a, b)
	var app string
	for i := 0; ; i++ {
		if app = fmt.Sprintf("app-%03d", i); a.Mine(app) {
			break
		}
	}
	if _, err := a.Acquire(ctx, app); err != nil {
		t.Fatal(err)
	}
	a.Shard.mu.RLock()
	lease := a.lease
	a.Shard.mu.RUnlock()
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		if !errors.Is(err, ErrLeaseExpired) {
			t.Fatalf("term ended with %v, want ErrLeaseExpired", err)
		}
		a.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the term did not end after its lease was revoked")
	}
	if err := a.Check(); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("Check after the term: %v", err)
	}
	if _, held := a.Held(app); held {
		t.Fatal("the ended term still holds an app")
	}
	resp, err := cli.Get(ctx, a.ownerKey(app))
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the owner key outlived the lease: %v %v", resp, err)
	}
	seesMembers(t, 1, b)
	if !b.Mine(app) {
		t.Fatalf("%s is not b's after a left", app)
	}
	if _, err := b.Acquire(ctx, app); err != nil {
		t.Fatal(err)
	}
}

// A clean stop revokes the lease: the others take over without waiting
// for the TTL.
func TestCleanStopLeavesAtOnce(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	a, b := join(t, cli, "a"), join(t, cli, "b")
	seesMembers(t, 2, a, b)
	a.cancel()
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("clean stop: %v", err)
		}
		a.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("the term did not end")
	}
	resp, err := cli.Get(ctx, DefaultPrefix+"members/a")
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("a's member key is still there after a clean stop: %v %v", resp, err)
	}
	seesMembers(t, 1, b)
}

// Two live replicas cannot share an id: the second waits (it says so)
// and does not join.
func TestDuplicateIDWaits(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	join(t, cli, "a")
	logs := &captured{}
	sh, err := New(Config{Client: cli, ID: "a", TTL: 2 * time.Second, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var joined atomic.Bool
	done := make(chan error, 1)
	go func() { done <- sh.Term(ctx, func() { joined.Store(true) }, func(string) {}) }()
	testenv.Eventually(t, 30*time.Second, "the second replica says its id is taken", func() error {
		return testenv.Check(logs.has("ha.id is registered by another live replica"), "not yet")
	})
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting replica: %v", err)
	}
	if joined.Load() {
		t.Fatal("a second replica with the same id joined")
	}
}

// captured is a slog.Handler keeping messages.
type captured struct {
	mu   sync.Mutex
	msgs []string
}

func (c *captured) Enabled(context.Context, slog.Level) bool { return true }
func (c *captured) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, r.Message)
	c.mu.Unlock()
	return nil
}
func (c *captured) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captured) WithGroup(string) slog.Handler      { return c }
func (c *captured) has(prefix string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}
