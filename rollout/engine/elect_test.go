package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/testsupport/testenv"
)

// lease is an in-process leader lock standing in for etcd's election in
// this unit test: one holder at a time, revocable by the test.
type lease struct {
	token  chan struct{}
	revoke map[string]context.CancelFunc
}

func newLease() *lease {
	l := &lease{token: make(chan struct{}, 1), revoke: map[string]context.CancelFunc{}}
	l.token <- struct{}{}
	return l
}

func (l *lease) elect(name string, granted chan<- string) Elect {
	return func(ctx context.Context) (context.Context, error) {
		select {
		case <-l.token:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		lctx, cancel := context.WithCancel(ctx)
		l.revoke[name] = cancel
		go func() { <-lctx.Done(); l.token <- struct{}{} }()
		granted <- name
		return lctx, nil
	}
}

func TestOnlyTheLeaderReconcilesAndAStandbyTakesOver(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	l := newLease()
	granted := make(chan string, 4)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mk := func(name string) *Engine {
		return New(Config{Source: h.src, Store: h.store, Resolver: h.rec, Clock: h.clock, Logger: quiet, Elect: l.elect(name, granted)})
	}
	a, b := mk("a"), mk("b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	if got := <-granted; got != "a" {
		t.Fatalf("first leader %s", got)
	}
	go b.Run(ctx)
	waitFor := func(e *Engine, what string, cond func(AppView) bool) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, what, func() error {
			h.rec.settle("demo")
			// Instances settled: let the leader see it now rather than at
			// its next requeue (a no-op on a standby, which has no queue).
			a.Trigger("demo")
			b.Trigger("demo")
			v, err := e.App(ctx, "demo")
			if err != nil {
				return err
			}
			return testenv.Check(cond(v), "status %+v", v.Status)
		})
	}
	waitPhase := func(e *Engine, phase rollout.Phase, version string) {
		t.Helper()
		waitFor(e, fmt.Sprintf("%s at %s", phase, version), func(v AppView) bool {
			return v.Status.Phase == phase && v.Status.StableVersion == version
		})
	}
	waitPhase(a, rollout.Healthy, "v1")
	if !a.Leader() || b.Leader() {
		t.Fatalf("leaders: a=%v b=%v", a.Leader(), b.Leader())
	}
	// the standby serves views from the shared store
	waitPhase(b, rollout.Healthy, "v1")

	// a loses its lease; b takes over and carries a release through,
	// including a command sent through b
	l.revoke["a"]()
	if got := <-granted; got != "b" {
		t.Fatalf("second leader %s", got)
	}
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	testenv.Eventually(t, 10*time.Second, "a steps down", func() error {
		return testenv.Check(!a.Leader(), "a still leads")
	})
	waitFor(b, "v2 at its pause step", func(v AppView) bool { return v.Status.CanaryVersion == "v2" && v.Status.Step == 1 })
	h.clock.Add(10 * time.Second)
	b.Trigger("demo")
	waitPhase(b, rollout.Healthy, "v2")
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	// a command sent to the standby a is processed by the leader b
	res, err := a.Command(cctx, "demo", rollout.CmdPause)
	if err != nil || res.Error != "" {
		t.Fatalf("pause through the standby: %v %+v", err, res)
	}
	for id, n := range h.rec.starts {
		if n != 1 {
			t.Errorf("instance %s started %d times", id, n)
		}
	}
}
