package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/internal/schema"
)

// DefaultPrefix is where the keys of this package live unless configured.
const DefaultPrefix = "/graylane/upgrade/"

// Config configures a Gate.
type Config struct {
	Client *clientv3.Client
	// Prefix holds the member records, the storage record and the mutex
	// (DefaultPrefix when empty). Installations sharing one etcd use
	// different prefixes, as they use different election keys.
	Prefix string
	// ID names this graylane: the value of its election key (ha.id).
	ID string
	// Release is its build version, shown to operators.
	Release string
	// Collections are where the records of every kind this graylane keeps
	// in etcd live; their kinds are the ones it advertises.
	Collections []Collection
	// Presence lists key prefixes where graylanes released before schema
	// versions hold a key while they run, with their id as its value: the
	// leader election's prefix (ha.key + "/").
	Presence []string
	// TTL is the lease of the member record (default 10s): a graylane that
	// dies stops holding versions back after this long.
	TTL time.Duration
	// Hold keeps storage versions where they are (upgrade.migration: hold),
	// so the previous release can still be started; records are migrated
	// once it is unset.
	Hold bool
	// Resync is the longest time between two evaluations (default 30s);
	// changes to members and storage are acted on at once.
	Resync time.Duration
	// Logger receives the gate's logs (nil: discarded).
	Logger *slog.Logger
	// Clock stamps records (nil: the real clock).
	Clock clock.Clock
}

// Gate advertises this graylane, keeps the storage versions it writes
// at, raises them when every live member allows and migrates records. A
// nil *Gate writes every kind at its current version without any check
// (tests and tools that run alone).
type Gate struct {
	cfg   Config
	log   *slog.Logger
	kinds []schema.Kind

	storageKey, membersPrefix, lockPrefix string

	mu         sync.Mutex
	storage    Storage
	storageRev int64 // mod revision of the storage key; 0 when absent
	waiting    []string
	sess       *concurrency.Session
	memberKey  string
	since      time.Time
}

// New returns a Gate; Start must succeed before records are read or
// written.
func New(cfg Config) (*Gate, error) {
	if cfg.Client == nil {
		return nil, errors.New("upgrade: Config.Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	cfg.Clock = clock.Or(cfg.Clock)
	g := &Gate{cfg: cfg, log: logx.OrDiscard(cfg.Logger).With("component", "upgrade"),
		storageKey: cfg.Prefix + "storage", membersPrefix: cfg.Prefix + "members/", lockPrefix: cfg.Prefix + "lock"}
	seen := map[string]bool{}
	for _, c := range cfg.Collections {
		if err := c.Kind.Validate(); err != nil {
			return nil, fmt.Errorf("upgrade: %w", err)
		}
		if c.Prefix == "" {
			return nil, fmt.Errorf("upgrade: collection of %ss has no prefix", c.Kind.What)
		}
		if !seen[c.Kind.Name] {
			seen[c.Kind.Name] = true
			g.kinds = append(g.kinds, c.Kind)
		}
	}
	return g, nil
}

// Self is this graylane's member record.
func (g *Gate) Self() Member {
	reads := map[string]int{}
	for _, k := range g.kinds {
		reads[k.Name] = k.Current
	}
	return Member{ID: g.cfg.ID, Release: g.cfg.Release, Reads: reads, Since: g.since}
}

// Start advertises this graylane (a member record on its own lease) and
// loads the storage versions. It fails with an error wrapping
// schema.ErrNewer, and advertises nothing, when etcd holds records of a
// version this graylane does not read. The record is advertised before
// the versions are read, so a member raising a version concurrently either
// sees this one or is seen by this check.
func (g *Gate) Start(ctx context.Context) error {
	g.since = g.cfg.Clock.Now().UTC()
	if err := g.advertise(ctx); err != nil {
		return err
	}
	resp, err := g.cfg.Client.Get(ctx, g.storageKey)
	if err != nil {
		g.Close()
		return fmt.Errorf("read schema versions %s: %w", g.storageKey, err)
	}
	if err := g.setStorage(resp.Kvs); err != nil {
		g.Close()
		return err
	}
	g.mu.Lock()
	st := g.storage
	g.mu.Unlock()
	if d := Decide(View{Kinds: g.kinds, Storage: st}); d.Refuse != nil {
		g.Close()
		return fmt.Errorf("this graylane (%s) cannot run on this etcd: %w", g.cfg.Release, d.Refuse)
	}
	g.log.Info("schema versions", "writes", g.describe(st), "member", g.memberKey)
	return nil
}

func (g *Gate) describe(st Storage) string {
	var parts []string
	for _, k := range g.kinds {
		parts = append(parts, fmt.Sprintf("%s=%d/%d", k.Name, st.at(k), k.Current))
	}
	return strings.Join(parts, " ")
}

// advertise puts the member record on a new session's lease.
func (g *Gate) advertise(ctx context.Context) error {
	sess, err := concurrency.NewSession(g.cfg.Client, concurrency.WithTTL(max(1, int(g.cfg.TTL.Seconds()))), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("etcd session for the member record: %w", err)
	}
	key := fmt.Sprintf("%s%x", g.membersPrefix, sess.Lease())
	b, err := encode(MemberKind(), g.Self())
	if err == nil {
		_, err = g.cfg.Client.Put(ctx, key, string(b), clientv3.WithLease(sess.Lease()))
	}
	if err != nil {
		sess.Close()
		return fmt.Errorf("advertise this graylane at %s: %w", key, err)
	}
	g.mu.Lock()
	g.sess, g.memberKey = sess, key
	g.mu.Unlock()
	return nil
}

// Close withdraws the member record at once (a clean stop: the others need
// not wait for the lease to expire).
func (g *Gate) Close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	sess := g.sess
	g.sess = nil
	g.mu.Unlock()
	if sess != nil {
		_ = sess.Close() // revokes the lease, deleting the member record
	}
}

// setStorage loads the storage record from a Get's kvs (empty: absent).
func (g *Gate) setStorage(kvs []*mvccpb.KeyValue) error {
	st, rev := Storage{}, int64(0)
	if len(kvs) > 0 {
		var err error
		if st, err = decodeStorage(kvs[0].Value); err != nil {
			return err
		}
		rev = kvs[0].ModRevision
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rev >= g.storageRev || len(kvs) == 0 {
		g.storage, g.storageRev = st, rev
	}
	return nil
}

// WriteAt returns the version kind is written at now and the comparison
// that keeps that answer true (the storage record's revision).
func (g *Gate) WriteAt(k schema.Kind) (int, clientv3.Cmp) {
	v, rev := g.writeAt(k)
	return v, clientv3.Compare(clientv3.ModRevision(g.storageKey), "=", rev)
}

func (g *Gate) writeAt(k schema.Kind) (version int, storageRev int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.storage.at(k), g.storageRev
}

// Put writes cur — a record of kind k at its current version — to key, at
// the version the cluster allows, in one transaction with cmps (the
// caller's compare-and-swap) and the storage guard. ok is false when cmps
// failed; a failed guard (the version was raised meanwhile) is retried at
// the new version. A nil Gate writes at the current version.
func (g *Gate) Put(ctx context.Context, kv clientv3.KV, k schema.Kind, key string, cur []byte, cmps []clientv3.Cmp, opts ...clientv3.OpOption) (resp *clientv3.TxnResponse, ok bool, err error) {
	for attempt := 0; ; attempt++ {
		at, rev, guard := k.Current, int64(0), []clientv3.Cmp(nil)
		var orElse []clientv3.Op
		if g != nil {
			at, rev = g.writeAt(k)
			guard = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(g.storageKey), "=", rev)}
			orElse = []clientv3.Op{clientv3.OpGet(g.storageKey)}
		}
		data, err := k.Encode(cur, at)
		if err != nil {
			return nil, false, fmt.Errorf("write %s: %w", key, err)
		}
		resp, err = kv.Txn(ctx).If(append(slices.Clone(cmps), guard...)...).Then(clientv3.OpPut(key, string(data), opts...)).Else(orElse...).Commit()
		if err != nil || resp.Succeeded {
			return resp, err == nil, err
		}
		if g == nil {
			return resp, false, nil
		}
		kvs := resp.Responses[len(resp.Responses)-1].GetResponseRange().Kvs
		var now int64
		if len(kvs) > 0 {
			now = kvs[0].ModRevision
		}
		if now == rev || attempt >= 5 {
			return resp, false, nil // the caller's comparison failed
		}
		if err := g.setStorage(kvs); err != nil {
			return nil, false, err
		}
	}
}
