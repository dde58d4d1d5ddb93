package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/graylane/graylane/rollout/engine"
)

// etcdElect returns an engine.Elect campaigning under key in etcd: the
// session's lease (ttl) is kept alive while graylane runs; if graylane dies
// or is cut off from etcd, the lease expires and another replica leads.
// A clean shutdown resigns at once.
func etcdElect(cli *clientv3.Client, key, id string, ttl time.Duration, log *slog.Logger) engine.Elect {
	return func(ctx context.Context) (context.Context, error) {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(max(1, int(ttl.Seconds()))), concurrency.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("etcd session for leader election: %w", err)
		}
		el := concurrency.NewElection(sess, key)
		log.Info("campaigning for leadership", "key", key, "id", id)
		if err := el.Campaign(ctx, id); err != nil {
			sess.Close()
			return nil, fmt.Errorf("campaign on %s: %w", key, err)
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
				log.Warn("leadership lease lost", "key", key)
			case <-ctx.Done():
				rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = el.Resign(rctx)
				rcancel()
			}
			cancel()
			sess.Close()
		}()
		return lctx, nil
	}
}

func defaultID() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

// leadership is one election shared by every environment's engine and
// the promotion controller: they lead together or not at all, so one
// replica reconciles everything (see README: High availability).
type leadership struct {
	elect engine.Elect

	mu      sync.Mutex
	cur     context.Context // the current term; nil while not leading
	changed chan struct{}   // closed and replaced when cur changes
}

func newLeadership(elect engine.Elect) *leadership {
	return &leadership{elect: elect, changed: make(chan struct{})}
}

// run campaigns until ctx ends, one term after another.
func (l *leadership) run(ctx context.Context) {
	for ctx.Err() == nil {
		term, err := l.elect(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		l.set(term)
		<-term.Done()
		l.set(nil)
	}
}

func (l *leadership) set(term context.Context) {
	l.mu.Lock()
	l.cur = term
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Elect is an engine.Elect: it waits for the shared term and returns a
// context that ends with it (or with ctx).
func (l *leadership) Elect(ctx context.Context) (context.Context, error) {
	for {
		l.mu.Lock()
		term, changed := l.cur, l.changed
		l.mu.Unlock()
		if term != nil && term.Err() == nil {
			out, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-term.Done():
				case <-out.Done():
				}
				cancel()
			}()
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}
