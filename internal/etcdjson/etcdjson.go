// Package etcdjson keeps JSON records in etcd with compare-and-swap: the
// small helper under the environments, promotion and hooks stores.
//
// Entry points: Get, Put (CAS on the key's mod revision; 0 = must not
// exist), Delete and List (a prefix, in key order).
package etcdjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
)

// ErrConflict is returned (wrapped) when a record changed since it was read.
var ErrConflict = errors.New("record changed concurrently")

// Get decodes the record at key into v and returns its mod revision; 0
// (and v untouched) when there is none. Unreachable etcd wraps
// configsync.ErrUnavailable.
func Get(ctx context.Context, cli *clientv3.Client, key string, v any) (int64, error) {
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w: %w", key, configsync.ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// Put writes v at key if its mod revision is still rev (0: the key must
// not exist) and returns the new revision, or an error wrapping
// ErrConflict.
func Put(ctx context.Context, cli *clientv3.Client, key string, v any, rev int64) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("write %s: %w: %w", key, configsync.ErrUnavailable, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("write %s at revision %d: %w", key, rev, ErrConflict)
	}
	return resp.Header.Revision, nil
}

// Delete removes key if its mod revision is rev (0: unconditionally).
func Delete(ctx context.Context, cli *clientv3.Client, key string, rev int64) error {
	txn := cli.Txn(ctx)
	if rev != 0 {
		txn = txn.If(clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	}
	resp, err := txn.Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("delete %s: %w: %w", key, configsync.ErrUnavailable, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete %s at revision %d: %w", key, rev, ErrConflict)
	}
	return nil
}

// List calls fn with every record under prefix, in key order, with its
// key and mod revision; fn decodes it.
func List(ctx context.Context, cli *clientv3.Client, prefix string, fn func(key string, data []byte, rev int64) error) error {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return fmt.Errorf("list %s: %w: %w", prefix, configsync.ErrUnavailable, err)
	}
	for _, kv := range resp.Kvs {
		if err := fn(string(kv.Key), kv.Value, kv.ModRevision); err != nil {
			return err
		}
	}
	return nil
}

// Update reads the record at key into a fresh value (new), lets change
// modify it (change returns false to write nothing), and writes it back
// with compare-and-swap, retrying on conflict a few times. It returns the
// record as written (or as read when nothing changed).
func Update[T any](ctx context.Context, cli *clientv3.Client, key string, change func(v *T, exists bool) (bool, error)) (T, error) {
	var last error
	for attempt := 0; attempt < 8; attempt++ {
		var v T
		rev, err := Get(ctx, cli, key, &v)
		if err != nil {
			return v, err
		}
		write, err := change(&v, rev != 0)
		if err != nil || !write {
			return v, err
		}
		if _, err := Put(ctx, cli, key, v, rev); err != nil {
			if errors.Is(err, ErrConflict) {
				last = err
				continue
			}
			return v, err
		}
		return v, nil
	}
	var zero T
	return zero, fmt.Errorf("update %s: gave up after repeated concurrent writes: %w", key, last)
}
