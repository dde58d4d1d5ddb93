package configrelease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/internal/upgrade"
)

// DefaultPrefix is where the etcd store keeps its records:
//
//	<prefix>history/<app>/<identity>   one HistoryEntry per config version
//	<prefix>state/<app>                State: what is verified where, and the
//	                                   pending write (write-ahead record)
const DefaultPrefix = "/graylane/config/"

// DefaultHistoryLimit is how many config versions are kept per app.
const DefaultHistoryLimit = 50

// HistoryEntry is one config version graylane released for an app: the
// files and the code version they were bound to.
type HistoryEntry struct {
	App string `json:"app"`
	// Identity is the release identity: the code version, or
	// "<version>_cfg<8 hex>" for a config-only change.
	Identity string `json:"identity"`
	// Version is the code version the config was bound to.
	Version string    `json:"version"`
	Bundle  Bundle    `json:"bundle"`
	BoundAt time.Time `json:"boundAt"`
	// Events says what became of it: placed as a gray copy, made stable,
	// replaced, withdrawn.
	Events []HistoryEvent `json:"events,omitempty"`
}

// HistoryEvent is one step in a config version's life.
type HistoryEvent struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // gray, stable, replaced, withdrawn
	Detail string    `json:"detail,omitempty"`
}

// maxHistoryEvents bounds HistoryEntry.Events.
const maxHistoryEvents = 20

// AppliedPlacement is what graylane last verified at a placement.
type AppliedPlacement struct {
	Placement Placement `json:"placement"`
	// Identity whose file it holds.
	Identity string `json:"identity,omitempty"`
	// SHA256 is the file digest read back there; "" means verified absent.
	SHA256 string `json:"sha256,omitempty"`
	// Verified is false while a write is planned or in flight: the
	// placement's content is unknown until it is read back.
	Verified bool      `json:"verified"`
	At       time.Time `json:"at"`
}

// Layout is which config the stable locations and the version-bound copies
// should hold.
type Layout struct {
	StableIdentity string `json:"stableIdentity,omitempty"`
	StableDigest   string `json:"stableDigest,omitempty"`
	GrayIdentity   string `json:"grayIdentity,omitempty"`
	GrayDigest     string `json:"grayDigest,omitempty"`
}

func (l Layout) String() string {
	s := "stable " + orNone(l.StableIdentity) + " (" + configwire.Short(l.StableDigest) + ")"
	if l.GrayIdentity != "" {
		s += ", gray " + l.GrayIdentity + " (" + configwire.Short(l.GrayDigest) + ")"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Txn is the write-ahead record of a dual-write: persisted before the
// first centre is touched, removed once every placement was read back. A
// graylane that finds one at start-up (it died mid-write) finishes it, or,
// if the release moved on meanwhile, undoes it by writing the layout now
// wanted: every placement it lists is re-read and rewritten.
type Txn struct {
	ID        string    `json:"id"`
	StartedAt time.Time `json:"startedAt"`
	From      Layout    `json:"from"`
	To        Layout    `json:"to"`
	Ops       []TxnOp   `json:"ops"`
}

// TxnOp is one write or delete of a Txn.
type TxnOp struct {
	Key       string    `json:"key"`
	Placement Placement `json:"placement"`
	// SHA256 is the file digest to write; "" deletes.
	SHA256 string `json:"sha256,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

// State is an app's persisted config state.
type State struct {
	// Applied maps Placement.Key to what was verified there.
	Applied map[string]AppliedPlacement `json:"applied,omitempty"`
	// Txn is the pending dual-write, if any.
	Txn *Txn `json:"txn,omitempty"`
	// Layout is the last layout that was fully in place.
	Layout Layout `json:"layout"`
}

// Store persists history and state. EtcdStore is the implementation;
// records are JSON.
type Store interface {
	ContentReader
	// Entry returns one history entry; ok is false when there is none.
	Entry(ctx context.Context, app, identity string) (e HistoryEntry, ok bool, err error)
	// PutEntry creates or replaces a history entry and prunes old ones
	// (never those named in keep).
	PutEntry(ctx context.Context, e HistoryEntry, keep ...string) error
	// History lists an app's entries, newest first.
	History(ctx context.Context, app string) ([]HistoryEntry, error)
	// LoadState returns an app's state (empty when none).
	LoadState(ctx context.Context, app string) (State, error)
	// SaveState replaces an app's state.
	SaveState(ctx context.Context, app string, st State) error
}

// EtcdStore keeps config history and state in etcd.
type EtcdStore struct {
	cli     *clientv3.Client
	prefix  string
	limit   int
	protect func(ctx context.Context, app string) (map[string]bool, error)
	gate    *upgrade.Gate
}

// StoreOption configures an EtcdStore.
type StoreOption func(*EtcdStore)

// WithProtect keeps, when old history entries are pruned, the identities
// f names for an app (the config bound to release revisions that are
// still kept, so a rollback to any of them finds its files).
func WithProtect(f func(ctx context.Context, app string) (map[string]bool, error)) StoreOption {
	return func(s *EtcdStore) { s.protect = f }
}

var _ Store = (*EtcdStore)(nil)

// EtcdStoreConfig configures an EtcdStore.
type EtcdStoreConfig struct {
	Client *clientv3.Client
	// Prefix holds history and state (DefaultPrefix when empty).
	Prefix string
	// Protect is as WithProtect (nil: none).
	Protect func(ctx context.Context, app string) (map[string]bool, error)
	// Gate says at which schema version records are written; nil writes
	// the current one.
	Gate *upgrade.Gate
}

// OpenEtcdStore returns an EtcdStore.
func OpenEtcdStore(cfg EtcdStoreConfig) *EtcdStore {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &EtcdStore{cli: cfg.Client, prefix: prefix, limit: DefaultHistoryLimit, protect: cfg.Protect, gate: cfg.Gate}
}

// NewEtcdStore returns a store under prefix (DefaultPrefix when ""),
// without a Gate.
func NewEtcdStore(cli *clientv3.Client, prefix string, opts ...StoreOption) *EtcdStore {
	s := OpenEtcdStore(EtcdStoreConfig{Client: cli, Prefix: prefix})
	for _, o := range opts {
		o(s)
	}
	return s
}

// Collections are where the records live, for the Gate's migrations.
func (s *EtcdStore) Collections() []upgrade.Collection { return Collections(s.prefix) }

// Collections are where an EtcdStore under prefix (DefaultPrefix when
// empty) keeps its records.
func Collections(prefix string) []upgrade.Collection {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return []upgrade.Collection{
		{Kind: StateKind(), Prefix: prefix + "state/", Children: true},
		{Kind: HistoryKind(), Prefix: prefix + "history/"},
	}
}

// StateKind is the schema of an app's config State (which holds the
// write intent of a dual-write in flight):
//
//	0  records of graylane before versions existed (no "schema" member)
//	1  "schema": 1, otherwise the same
func StateKind() schema.Kind {
	return schema.Kind{Name: "config-state", What: "config state record", Current: 1, Unversioned: 0,
		Steps: []schema.Step{{Change: `the "schema" member`}}}
}

// HistoryKind is the schema of a HistoryEntry; versions as StateKind.
func HistoryKind() schema.Kind {
	return schema.Kind{Name: "config-history", What: "config history entry", Current: 1, Unversioned: 0,
		Steps: []schema.Step{{Change: `the "schema" member`}}}
}

// decodeRecord unmarshals a record of kind k at any version this graylane
// reads into v; a newer one is refused (schema.ErrNewer).
func decodeRecord(k schema.Kind, b []byte, v any) error {
	cur, _, err := k.Decode(b)
	if err != nil {
		return err
	}
	return json.Unmarshal(cur, v)
}

// put writes v (a record of kind k) at key at the version the Gate allows.
func (s *EtcdStore) put(ctx context.Context, k schema.Kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, _, err = s.gate.Put(ctx, s.cli, k, key, b, nil)
	return err
}

func (s *EtcdStore) historyKey(app, id string) string { return s.prefix + "history/" + app + "/" + id }
func (s *EtcdStore) stateKey(app string) string       { return s.prefix + "state/" + app }

// ReadContent implements ContentReader.
func (s *EtcdStore) ReadContent(ctx context.Context, key string) ([]byte, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w: %w", key, configsync.ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("etcd key %s: %w", key, configsync.ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

// Entry implements Store.
func (s *EtcdStore) Entry(ctx context.Context, app, identity string) (HistoryEntry, bool, error) {
	resp, err := s.cli.Get(ctx, s.historyKey(app, identity))
	if err != nil {
		return HistoryEntry{}, false, fmt.Errorf("read config history of %s/%s: %w: %w", app, identity, configsync.ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return HistoryEntry{}, false, nil
	}
	var e HistoryEntry
	if err := decodeRecord(HistoryKind(), resp.Kvs[0].Value, &e); err != nil {
		return HistoryEntry{}, false, fmt.Errorf("decode config history of %s/%s: %w", app, identity, err)
	}
	return e, true, nil
}

// PutEntry implements Store.
func (s *EtcdStore) PutEntry(ctx context.Context, e HistoryEntry, keep ...string) error {
	if err := s.put(ctx, HistoryKind(), s.historyKey(e.App, e.Identity), e); err != nil {
		return fmt.Errorf("write config history of %s/%s: %w: %w", e.App, e.Identity, configsync.ErrUnavailable, err)
	}
	all, err := s.History(ctx, e.App)
	if err != nil || len(all) <= s.limit {
		return err
	}
	protect := map[string]bool{e.Identity: true}
	for _, k := range keep {
		protect[k] = true
	}
	if s.protect != nil {
		more, err := s.protect(ctx, e.App)
		if err != nil {
			return fmt.Errorf("prune config history of %s: which entries kept revisions name: %w", e.App, err)
		}
		for k := range more {
			protect[k] = true
		}
	}
	for _, old := range all[s.limit:] {
		if !protect[old.Identity] {
			if _, err := s.cli.Delete(ctx, s.historyKey(e.App, old.Identity)); err != nil {
				return fmt.Errorf("prune config history of %s: %w", e.App, err)
			}
		}
	}
	return nil
}

// History implements Store.
func (s *EtcdStore) History(ctx context.Context, app string) ([]HistoryEntry, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"history/"+app+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list config history of %s: %w: %w", app, configsync.ErrUnavailable, err)
	}
	out := make([]HistoryEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e HistoryEntry
		if err := decodeRecord(HistoryKind(), kv.Value, &e); err != nil {
			return nil, fmt.Errorf("decode config history %s: %w", kv.Key, err)
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].BoundAt.After(out[j].BoundAt) })
	return out, nil
}

// LoadState implements Store.
func (s *EtcdStore) LoadState(ctx context.Context, app string) (State, error) {
	resp, err := s.cli.Get(ctx, s.stateKey(app))
	if err != nil {
		return State{}, fmt.Errorf("read config state of %s: %w: %w", app, configsync.ErrUnavailable, err)
	}
	st := State{Applied: map[string]AppliedPlacement{}}
	if len(resp.Kvs) == 0 {
		return st, nil
	}
	if err := decodeRecord(StateKind(), resp.Kvs[0].Value, &st); err != nil {
		return State{}, fmt.Errorf("decode config state of %s: %w", app, err)
	}
	if st.Applied == nil {
		st.Applied = map[string]AppliedPlacement{}
	}
	return st, nil
}

// SaveState implements Store.
func (s *EtcdStore) SaveState(ctx context.Context, app string, st State) error {
	if err := s.put(ctx, StateKind(), s.stateKey(app), st); err != nil {
		return fmt.Errorf("write config state of %s: %w: %w", app, configsync.ErrUnavailable, err)
	}
	return nil
}

// errInvalidIdentity is returned when a version is too long to carry a
// config digest.
var errInvalidIdentity = errors.New("release identity too long")
