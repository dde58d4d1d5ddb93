package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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
