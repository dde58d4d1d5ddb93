package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/rollout/engine"
)

var _ engine.FencedStore = (*Store)(nil)

// SaveFenced implements engine.FencedStore: one transaction compares the
// record's mod revision and the ownership key's create revision (the
// fencing token), so a replica that lost the app — its lease expired, the
// key is gone or another replica's — writes nothing. The record is written
// through the upgrade Gate, at the schema version every live graylane
// reads, like Save.
func (s *Store) SaveFenced(ctx context.Context, app string, rec engine.Record, rev int64, f engine.Fence) (int64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode record of %s: %w", app, err)
	}
	k := s.key(app)
	resp, ok, err := s.gate.Put(ctx, s.c, engine.RecordKind(), k, b,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", rev), clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Token)})
	if err != nil {
		return 0, fmt.Errorf("etcd put %s: %w", k, err)
	}
	if !ok {
		fence, err := s.c.Get(ctx, f.Key, clientv3.WithKeysOnly())
		if err != nil {
			return 0, fmt.Errorf("etcd get %s after a refused save of %s: %w", f.Key, k, err)
		}
		return 0, s.why(k, rev, f, fence.Kvs)
	}
	return resp.Header.Revision, nil
}

// DeleteFenced implements engine.FencedStore.
func (s *Store) DeleteFenced(ctx context.Context, app string, rev int64, f engine.Fence) error {
	k := s.key(app)
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", rev), clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Token)).
		Then(clientv3.OpDelete(k)).
		Else(clientv3.OpGet(f.Key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("etcd delete %s: %w", k, err)
	}
	if !resp.Succeeded {
		return s.why(k, rev, f, resp.Responses[0].GetResponseRange().Kvs)
	}
	return nil
}

// why tells a lost fence from a lost compare-and-swap.
func (s *Store) why(k string, rev int64, f engine.Fence, kvs []*mvccpb.KeyValue) error {
	if len(kvs) == 0 || kvs[0].CreateRevision != f.Token {
		return fmt.Errorf("write %s with fencing token %d of %s: %w", k, f.Token, f.Holder, engine.ErrFenced)
	}
	return fmt.Errorf("save %s at revision %d: %w", k, rev, engine.ErrConflict)
}
