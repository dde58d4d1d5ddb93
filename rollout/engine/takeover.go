package engine

import (
	"context"
	"sync"
	"time"
)

// takeovers collects the apps that may have become this replica's to take
// (shard mode: an ownership key was deleted, or the membership changed),
// for the takeover loop to claim together.
type takeovers struct {
	mu   sync.Mutex
	apps map[string]struct{}
	wake chan struct{} // one pending wake-up is enough
}

func newTakeovers() *takeovers {
	return &takeovers{apps: map[string]struct{}{}, wake: make(chan struct{}, 1)}
}

// add records apps and wakes the loop; it never blocks (the Shard's
// changed callback calls it).
func (t *takeovers) add(apps ...string) {
	t.mu.Lock()
	for _, a := range apps {
		t.apps[a] = struct{}{}
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// drain returns the apps recorded and forgets them.
func (t *takeovers) drain() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.apps))
	for a := range t.apps {
		out = append(out, a)
	}
	clear(t.apps)
	return out
}

// takeOver runs for one shard term: it claims the apps shardChanged found
// to be this replica's and not held, in batched transactions
// (Shard.Claim), and queues those it took in the takeover lane, ahead of
// every event and timer. Without it each app would be taken by one
// transaction inside its own pass, and those passes would wait behind a
// storm's backlog: a killed replica's apps were taken over 25–97 s after
// the kill instead of within the TTL. Apps held elsewhere are left: their
// keys' deletions bring them back. When a claim fails (etcd unavailable)
// the apps get ordinary passes, whose claim retries one by one.
func (e *Engine) takeOver(ctx context.Context) {
	sh := e.cfg.Shard
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.takeovers.wake:
		}
		var todo []string
		for _, a := range e.takeovers.drain() {
			if _, held := sh.Held(a); !held && sh.Mine(a) {
				todo = append(todo, a)
			}
		}
		if len(todo) == 0 {
			continue
		}
		start := time.Now()
		taken, err := sh.Claim(ctx, todo)
		for _, a := range taken {
			e.forgetLocal(a) // anything left from an earlier holding is stale
			e.queueTakeover(a)
		}
		if len(taken) > 0 {
			e.cfg.Metrics.setShard(sh.Status())
			e.log.Info("took apps over", "apps", len(taken), "candidates", len(todo), "took", time.Since(start).Round(time.Millisecond))
		}
		if err != nil && ctx.Err() == nil && sh.Check() == nil {
			e.log.Warn("claim apps together; each app's pass claims it alone", "apps", len(todo), "err", err)
			got := make(map[string]bool, len(taken))
			for _, a := range taken {
				got[a] = true
			}
			for _, a := range todo {
				if !got[a] {
					e.Trigger(a)
				}
			}
		}
	}
}

// queueTakeover queues app in the takeover lane (nothing while not
// driving: the term's start-up sweep covers every app that is this
// replica's).
func (e *Engine) queueTakeover(app string) {
	e.qmu.Lock()
	q := e.queue
	e.qmu.Unlock()
	if q != nil {
		q.Takeover(app)
	}
}
