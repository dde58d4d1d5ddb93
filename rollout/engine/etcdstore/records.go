package etcdstore

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/rollout/engine"
)

var _ engine.RecordWatcher = (*Store)(nil)

// listPage is how many records one range request reads.
const listPage = 500

// ListRecords implements engine.RecordWatcher: every record under the
// prefix, read in pages at one revision (the first page's), so the
// listing is a consistent snapshot to watch from.
func (s *Store) ListRecords(ctx context.Context, fn func(app string, rec engine.Record, rev int64)) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(s.prefix)
	key := s.prefix
	var at int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if at > 0 {
			opts = append(opts, clientv3.WithRev(at))
		}
		resp, err := s.c.Get(ctx, key, opts...)
		if err != nil {
			return 0, fmt.Errorf("etcd list %s: %w", s.prefix, err)
		}
		if at == 0 {
			at = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			app := s.app(string(kv.Key))
			if app == "" {
				continue
			}
			rec, err := engine.DecodeRecordHead(kv.Value)
			if err != nil {
				continue // Load reports it for this app (newer: refused); the list skips it
			}
			fn(app, rec, kv.ModRevision)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return at, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// WatchRecords implements engine.RecordWatcher.
func (s *Store) WatchRecords(ctx context.Context, rev int64) <-chan engine.RecordChange {
	out := make(chan engine.RecordChange, 64)
	go func() {
		defer close(out)
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		send := func(c engine.RecordChange) bool {
			select {
			case out <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range s.c.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if err := resp.Err(); err != nil {
				send(engine.RecordChange{Err: fmt.Errorf("etcd watch %s: %w", s.prefix, err)})
				return
			}
			for _, ev := range resp.Events {
				app := s.app(string(ev.Kv.Key))
				if app == "" {
					continue
				}
				c := engine.RecordChange{App: app, Rev: ev.Kv.ModRevision}
				if ev.Type == clientv3.EventTypeDelete {
					c.Deleted = true
				} else if rec, err := engine.DecodeRecordHead(ev.Kv.Value); err == nil {
					c.Record = rec
				} else {
					continue // Load reports it (newer: refused)
				}
				if !send(c) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(engine.RecordChange{Err: fmt.Errorf("etcd watch %s ended", s.prefix)})
		}
	}()
	return out
}

// app is the app a key under the prefix belongs to ("" for other keys).
func (s *Store) app(key string) string {
	a := strings.TrimPrefix(key, s.prefix)
	if a == key || a == "" || strings.Contains(a, "/") {
		return ""
	}
	return a
}
