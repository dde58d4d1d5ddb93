package engine

import (
	"context"
	"sync"
	"sync/atomic"
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
//
// While the takeover lane holds apps, up to Config.Workers extra workers
// drain it next to the ordinary ones (which serve it first too): a pass
// mostly waits on etcd and the deploy system, and the ordinary workers
// are busy with a storm's passes when a replica dies. takeOver returns
// once ctx ended and its extra workers are done.
func (e *Engine) takeOver(ctx context.Context) {
	sh := e.cfg.Shard
	var extra sync.WaitGroup
	defer extra.Wait()
	var running atomic.Int64
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
		e.drainTakeovers(ctx, len(taken), &running, &extra)
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

// drainTakeovers starts up to n extra workers (never more than
// Config.Workers running) that run the takeover lane's passes until it is
// empty.
func (e *Engine) drainTakeovers(ctx context.Context, n int, running *atomic.Int64, wg *sync.WaitGroup) {
	e.qmu.Lock()
	q := e.queue
	e.qmu.Unlock()
	if q == nil {
		return
	}
	for i := 0; i < n; i++ {
		if running.Add(1) > int64(e.cfg.Workers) {
			running.Add(-1)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			for ctx.Err() == nil {
				app, ok := q.TryTakeover()
				if !ok {
					return
				}
				e.process(ctx, q, app, true)
			}
		}()
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
