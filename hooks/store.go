package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/etcdjson"
)

// Store keeps hook records with compare-and-swap.
type Store interface {
	// Get returns the record of app's bundle and its revision (0: none).
	Get(ctx context.Context, app, bundle string) (Record, int64, error)
	// Put writes rec if the stored revision is still rev (0: must not
	// exist), or returns an error wrapping etcdjson.ErrConflict.
	Put(ctx context.Context, rec Record, rev int64) error
	// List returns app's records, newest first.
	List(ctx context.Context, app string) ([]Record, error)
}

// DefaultPrefix is where EtcdStore keeps records: <prefix><app>/<bundle>.
const DefaultPrefix = "/graylane/hooks/"

// EtcdStore is a Store in etcd.
type EtcdStore struct {
	cli *clientv3.Client
	pre string
}

var _ Store = (*EtcdStore)(nil)

// NewEtcdStore returns an EtcdStore under prefix (DefaultPrefix if empty).
func NewEtcdStore(cli *clientv3.Client, prefix string) *EtcdStore {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &EtcdStore{cli: cli, pre: prefix}
}

// Get implements Store.
func (s *EtcdStore) Get(ctx context.Context, app, bundle string) (Record, int64, error) {
	var r Record
	rev, err := etcdjson.Get(ctx, s.cli, s.pre+app+"/"+bundle, &r)
	if err == nil && rev != 0 && r.Schema > SchemaVersion {
		err = fmt.Errorf("hook record of %s bundle %s has schema %d, this graylane reads up to %d: upgrade graylane", app, bundle, r.Schema, SchemaVersion)
	}
	return r, rev, err
}

// Put implements Store.
func (s *EtcdStore) Put(ctx context.Context, rec Record, rev int64) error {
	rec.Schema = SchemaVersion
	_, err := etcdjson.Put(ctx, s.cli, s.pre+rec.App+"/"+rec.Bundle, rec, rev)
	return err
}

// List implements Store.
func (s *EtcdStore) List(ctx context.Context, app string) ([]Record, error) {
	var out []Record
	err := etcdjson.List(ctx, s.cli, s.pre+app+"/", func(key string, data []byte, rev int64) error {
		var r Record
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("decode %s: %w", key, err)
		}
		out = append(out, r)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	return out, err
}

// MemoryStore is a Store in memory, for tests.
type MemoryStore struct {
	mu   sync.Mutex
	recs map[string]memRec
	rev  int64
}

type memRec struct {
	data []byte
	rev  int64
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{recs: map[string]memRec{}} }

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, app, bundle string) (Record, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r Record
	e, ok := m.recs[app+"/"+bundle]
	if !ok {
		return r, 0, nil
	}
	err := json.Unmarshal(e.data, &r)
	return r, e.rev, err
}

// Put implements Store.
func (m *MemoryStore) Put(ctx context.Context, rec Record, rev int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := rec.App + "/" + rec.Bundle
	if m.recs[k].rev != rev {
		return fmt.Errorf("hook record %s: %w", k, etcdjson.ErrConflict)
	}
	rec.Schema = SchemaVersion
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	m.rev++
	m.recs[k] = memRec{data: b, rev: m.rev}
	return nil
}

// List implements Store.
func (m *MemoryStore) List(ctx context.Context, app string) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for k, e := range m.recs {
		if strings.HasPrefix(k, app+"/") {
			var r Record
			if err := json.Unmarshal(e.data, &r); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	return out, nil
}
