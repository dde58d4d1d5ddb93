package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/rollout/analysis"
	"github.com/graylane/graylane/rollout/engine"
)

// DefaultPrefix is where records live unless configured otherwise.
const DefaultPrefix = "/graylane/state/"

// Store is an engine.Store on etcd.
type Store struct {
	c      *clientv3.Client
	prefix string
	gate   *upgrade.Gate
}

var _ engine.Store = (*Store)(nil)

// Config configures a Store.
type Config struct {
	Client *clientv3.Client
	// Prefix holds one record per app (DefaultPrefix when empty).
	Prefix string
	// Gate says at which schema version records are written (the one
	// every live graylane reads); nil writes the current version (a
	// graylane alone, tests).
	Gate *upgrade.Gate
}

// Open returns a Store.
func Open(cfg Config) *Store {
	return &Store{c: cfg.Client, prefix: dirPrefix(cfg.Prefix, DefaultPrefix), gate: cfg.Gate}
}

// New returns a Store keeping records under prefix, without a Gate.
func New(c *clientv3.Client, prefix string) *Store { return Open(Config{Client: c, Prefix: prefix}) }

// Collection is where the records live, for the Gate's migrations.
func (s *Store) Collection() upgrade.Collection { return Collection(s.prefix) }

// Collection is where a Store under prefix (DefaultPrefix when empty)
// keeps its records.
func Collection(prefix string) upgrade.Collection {
	return upgrade.Collection{Kind: engine.RecordKind(), Prefix: dirPrefix(prefix, DefaultPrefix), Children: true}
}

// dirPrefix is prefix (def when empty) ending in "/".
func dirPrefix(prefix, def string) string {
	if prefix == "" {
		prefix = def
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix
}

func (s *Store) key(app string) string { return s.prefix + app }

// Load implements engine.Store; the revision is the key's mod revision.
func (s *Store) Load(ctx context.Context, app string) (engine.Record, int64, error) {
	return s.load(ctx, app)
}

// LoadView implements engine.ViewStore with a serializable read.
func (s *Store) LoadView(ctx context.Context, app string) (engine.Record, int64, error) {
	return s.load(ctx, app, clientv3.WithSerializable())
}

var _ engine.ViewStore = (*Store)(nil)

func (s *Store) load(ctx context.Context, app string, opts ...clientv3.OpOption) (engine.Record, int64, error) {
	resp, err := s.c.Get(ctx, s.key(app), opts...)
	if err != nil {
		return engine.Record{}, 0, fmt.Errorf("etcd get %s: %w", s.key(app), err)
	}
	if len(resp.Kvs) == 0 {
		return engine.Record{}, 0, nil
	}
	rec, err := engine.DecodeRecord(resp.Kvs[0].Value)
	if err != nil {
		return engine.Record{}, 0, fmt.Errorf("state record %s: %w", s.key(app), err)
	}
	return rec, resp.Kvs[0].ModRevision, nil
}

// Save implements engine.Store with a transaction comparing the mod revision.
func (s *Store) Save(ctx context.Context, app string, rec engine.Record, rev int64) (int64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode record of %s: %w", app, err)
	}
	k := s.key(app)
	resp, ok, err := s.gate.Put(ctx, s.c, engine.RecordKind(), k, b, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", rev)})
	if err != nil {
		return 0, fmt.Errorf("etcd put %s: %w", k, err)
	}
	if !ok {
		return 0, fmt.Errorf("save %s at revision %d: %w", k, rev, engine.ErrConflict)
	}
	return resp.Header.Revision, nil
}

// Delete implements engine.Store.
func (s *Store) Delete(ctx context.Context, app string, rev int64) error {
	k := s.key(app)
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
		Then(clientv3.OpDelete(k)).
		Commit()
	if err != nil {
		return fmt.Errorf("etcd delete %s: %w", k, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete %s at revision %d: %w", k, rev, engine.ErrConflict)
	}
	return nil
}

// Apps implements engine.Store.
func (s *Store) Apps(ctx context.Context) ([]string, error) {
	resp, err := s.c.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", s.prefix, err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		a := strings.TrimPrefix(string(kv.Key), s.prefix)
		if a != "" && !strings.Contains(a, "/") {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out, nil
}

// DefaultJournalPrefix is where analysis results are journaled unless
// configured otherwise: outside DefaultPrefix, whose keys are all records.
const DefaultJournalPrefix = "/graylane/analysis/"

// Journal is an analysis.Journal on etcd: one key per app under a prefix.
type Journal struct {
	c      *clientv3.Client
	prefix string
	gate   *upgrade.Gate
}

var _ analysis.Journal = (*Journal)(nil)

// OpenJournal returns a Journal; Config.Prefix defaults to
// DefaultJournalPrefix.
func OpenJournal(cfg Config) *Journal {
	return &Journal{c: cfg.Client, prefix: dirPrefix(cfg.Prefix, DefaultJournalPrefix), gate: cfg.Gate}
}

// NewJournal returns a Journal keeping entries under prefix
// (DefaultJournalPrefix when empty), without a Gate.
func NewJournal(c *clientv3.Client, prefix string) *Journal {
	return OpenJournal(Config{Client: c, Prefix: prefix})
}

// Collection is where the entries live, for the Gate's migrations.
func (j *Journal) Collection() upgrade.Collection { return JournalCollection(j.prefix) }

// JournalCollection is where a Journal under prefix (DefaultJournalPrefix
// when empty) keeps its entries.
func JournalCollection(prefix string) upgrade.Collection {
	return upgrade.Collection{Kind: analysis.JournalKind(), Prefix: dirPrefix(prefix, DefaultJournalPrefix), Children: true}
}

// Load implements analysis.Journal.
func (j *Journal) Load(ctx context.Context, app string) ([]byte, error) {
	resp, err := j.c.Get(ctx, j.prefix+app)
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", j.prefix+app, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// Save implements analysis.Journal: data (an entry at the current
// version) is written at the version every live graylane reads.
func (j *Journal) Save(ctx context.Context, app string, data []byte) error {
	if _, _, err := j.gate.Put(ctx, j.c, analysis.JournalKind(), j.prefix+app, data, nil); err != nil {
		return fmt.Errorf("etcd put %s: %w", j.prefix+app, err)
	}
	return nil
}

// Delete implements analysis.Journal.
func (j *Journal) Delete(ctx context.Context, app string) error {
	if _, err := j.c.Delete(ctx, j.prefix+app); err != nil {
		return fmt.Errorf("etcd delete %s: %w", j.prefix+app, err)
	}
	return nil
}
