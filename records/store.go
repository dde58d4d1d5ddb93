package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/clock"
)

// DefaultPrefix is where the Store keeps its records in graylane's etcd:
//
//	<prefix>revisions/<app>/<number, 10 digits>   Revision
//	<prefix>releases/<start, 20-digit unix ns>/<app>/<number>   Summary (statistics)
//	<prefix>deleted/<app>                         deletion mark (revisions expire later)
//	<prefix>intents/<app>/<document digest>       Intent (leased: expires by itself)
const DefaultPrefix = "/graylane/records/"

// Defaults of StoreConfig.
const (
	DefaultKeep             = 50
	DefaultDeletedRetention = 30 * 24 * time.Hour
	DefaultSummaryRetention = 31 * 24 * time.Hour
	DefaultIntentTTL        = time.Hour
)

// ErrNotFound is returned (wrapped) for a revision that is not kept.
var ErrNotFound = errors.New("revision not found")

// StoreConfig configures a Store.
type StoreConfig struct {
	Client *clientv3.Client
	// Prefix defaults to DefaultPrefix.
	Prefix string
	// Keep is how many revisions are kept per app (DefaultKeep).
	Keep int
	// DeletedRetention is how long a deleted app's revisions are kept
	// (DefaultDeletedRetention).
	DeletedRetention time.Duration
	// SummaryRetention is how long release summaries are kept for
	// statistics (DefaultSummaryRetention; at least the longest window).
	SummaryRetention time.Duration
	// IntentTTL is how long an intent waits for the engine
	// (DefaultIntentTTL).
	IntentTTL time.Duration
	Clock     clock.Clock
}

// Store keeps revisions, release summaries and intents in etcd. Writes
// are idempotent: a revision is replaced whole.
type Store struct {
	cfg StoreConfig
	cli *clientv3.Client
	pre string
}

// NewStore returns a Store.
func NewStore(cfg StoreConfig) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.DeletedRetention <= 0 {
		cfg.DeletedRetention = DefaultDeletedRetention
	}
	if cfg.SummaryRetention <= 0 {
		cfg.SummaryRetention = DefaultSummaryRetention
	}
	if cfg.IntentTTL <= 0 {
		cfg.IntentTTL = DefaultIntentTTL
	}
	cfg.Clock = clock.Or(cfg.Clock)
	return &Store{cfg: cfg, cli: cfg.Client, pre: cfg.Prefix}
}

// Keep returns how many revisions are kept per app.
func (s *Store) Keep() int { return s.cfg.Keep }

func (s *Store) revDir(app string) string        { return s.pre + "revisions/" + app + "/" }
func (s *Store) revKey(app string, n int) string { return fmt.Sprintf("%s%010d", s.revDir(app), n) }
func (s *Store) deletedKey(app string) string    { return s.pre + "deleted/" + app }
func (s *Store) intentDir(app string) string     { return s.pre + "intents/" + app + "/" }
func (s *Store) summaryDir() string              { return s.pre + "releases/" }
func (s *Store) summaryAt(t time.Time) string {
	return fmt.Sprintf("%s%020d", s.summaryDir(), t.UnixNano())
}
func (s *Store) summaryKey(r *Revision) string {
	return fmt.Sprintf("%s/%s/%010d", s.summaryAt(r.StartedAt), r.App, r.Number)
}
func (s *Store) intentKey(app, d string) string { return s.intentDir(app) + d }
func (s *Store) what(app string, n int) string  { return fmt.Sprintf("revision %d of %s", n, app) }
func unavailable(what string, err error) error  { return fmt.Errorf("%s: etcd: %w", what, err) }
func numberOf(key string) (int, error)          { return strconv.Atoi(key[strings.LastIndexByte(key, '/')+1:]) }

// Put writes revisions (and their summaries), lifts the app's deletion
// mark, and prunes the app's revisions beyond Keep.
func (s *Store) Put(ctx context.Context, revs ...Revision) error {
	for i := range revs {
		r := &revs[i]
		r.Schema = SchemaVersion
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		sum, err := json.Marshal(r.Summarize())
		if err != nil {
			return err
		}
		ops := []clientv3.Op{clientv3.OpPut(s.revKey(r.App, r.Number), string(b)), clientv3.OpDelete(s.deletedKey(r.App))}
		if r.Kind != KindAdopted {
			ops = append(ops, clientv3.OpPut(s.summaryKey(r), string(sum)))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return unavailable("write "+s.what(r.App, r.Number), err)
		}
		if r.Number > s.cfg.Keep {
			if _, err := s.cli.Delete(ctx, s.revDir(r.App), clientv3.WithRange(s.revKey(r.App, r.Number-s.cfg.Keep+1))); err != nil {
				return unavailable("prune revisions of "+r.App, err)
			}
		}
	}
	return nil
}

// Revisions lists an app's kept revisions, newest first.
func (s *Store) Revisions(ctx context.Context, app string) ([]Revision, error) {
	resp, err := s.cli.Get(ctx, s.revDir(app), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, unavailable("list revisions of "+app, err)
	}
	out := make([]Revision, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Revision
		if err := decode(string(kv.Key), kv.Value, &r, func() int { return r.Schema }); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Revision returns revision n of app, or an error wrapping ErrNotFound.
func (s *Store) Revision(ctx context.Context, app string, n int) (Revision, error) {
	resp, err := s.cli.Get(ctx, s.revKey(app, n))
	if err != nil {
		return Revision{}, unavailable("read "+s.what(app, n), err)
	}
	if len(resp.Kvs) == 0 {
		return Revision{}, fmt.Errorf("%s is not kept (the last %d of an app are): %w", s.what(app, n), s.cfg.Keep, ErrNotFound)
	}
	var r Revision
	if err := decode(s.what(app, n), resp.Kvs[0].Value, &r, func() int { return r.Schema }); err != nil {
		return Revision{}, err
	}
	return r, nil
}

// Last returns the highest revision number kept for app (0: none).
func (s *Store) Last(ctx context.Context, app string) (int, error) {
	resp, err := s.cli.Get(ctx, s.revDir(app), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend),
		clientv3.WithLimit(1), clientv3.WithKeysOnly())
	if err != nil {
		return 0, unavailable("read the last revision of "+app, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return numberOf(string(resp.Kvs[0].Key))
}

type deletion struct {
	Schema int       `json:"schema"`
	At     time.Time `json:"at"`
}

// MarkDeleted notes that app was deleted at t: its revisions are removed
// DeletedRetention later unless it is created again.
func (s *Store) MarkDeleted(ctx context.Context, app string, at time.Time) error {
	b, _ := json.Marshal(deletion{Schema: SchemaVersion, At: at})
	if _, err := s.cli.Put(ctx, s.deletedKey(app), string(b)); err != nil {
		return unavailable("mark "+app+" deleted", err)
	}
	return nil
}

// Expire removes the revisions of apps deleted more than DeletedRetention
// ago, and release summaries older than SummaryRetention. It returns the
// number of apps whose revisions it removed.
func (s *Store) Expire(ctx context.Context) (int, error) {
	now := s.cfg.Clock.Now()
	resp, err := s.cli.Get(ctx, s.pre+"deleted/", clientv3.WithPrefix())
	if err != nil {
		return 0, unavailable("list deleted apps", err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		app := strings.TrimPrefix(string(kv.Key), s.pre+"deleted/")
		var d deletion
		if err := decode("deletion mark of "+app, kv.Value, &d, func() int { return d.Schema }); err != nil {
			return n, err
		}
		if now.Sub(d.At) < s.cfg.DeletedRetention {
			continue
		}
		// only if the mark is unchanged: an app created again keeps them
		t, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(s.revDir(app), clientv3.WithPrefix()), clientv3.OpDelete(string(kv.Key))).Commit()
		if err != nil {
			return n, unavailable("expire revisions of "+app, err)
		}
		if t.Succeeded {
			n++
		}
	}
	if _, err := s.cli.Delete(ctx, s.summaryDir(), clientv3.WithRange(s.summaryAt(now.Add(-s.cfg.SummaryRetention)))); err != nil {
		return n, unavailable("expire release summaries", err)
	}
	return n, nil
}

// Summaries returns the summaries of releases started at or after since,
// oldest first.
func (s *Store) Summaries(ctx context.Context, since time.Time) ([]Summary, error) {
	resp, err := s.cli.Get(ctx, s.summaryAt(since), clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.summaryDir())))
	if err != nil {
		return nil, unavailable("read release summaries", err)
	}
	out := make([]Summary, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var x Summary
		if err := decode(string(kv.Key), kv.Value, &x, func() int { return x.Schema }); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, nil
}

// Intent is what the API records before it writes a document to the
// centre: who writes it and why. The engine finds it by the document's
// digest when the document arrives, so a rollback to a revision takes the
// fast path and every revision names its caller. Intents are leased in
// etcd and vanish after IntentTTL.
type Intent struct {
	Schema int    `json:"schema"`
	App    string `json:"app"`
	// Digest is DocumentDigest of the document written.
	Digest string `json:"digest"`
	Actor  string `json:"actor,omitempty"`
	Via    string `json:"via,omitempty"`
	// Action is apply, set-version or rollback.
	Action string `json:"action"`
	// RollbackTo is the revision a rollback restores.
	RollbackTo int       `json:"rollbackTo,omitempty"`
	Version    string    `json:"version,omitempty"`
	At         time.Time `json:"at"`
	// DocumentVersion is the centre's version of the document once
	// written ("" until then).
	DocumentVersion string `json:"documentVersion,omitempty"`
}

// PutIntent records an intent, leased for IntentTTL.
func (s *Store) PutIntent(ctx context.Context, in Intent) error {
	in.Schema = SchemaVersion
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	lease, err := s.cli.Grant(ctx, int64(s.cfg.IntentTTL/time.Second))
	if err != nil {
		return unavailable("lease for the intent of "+in.App, err)
	}
	if _, err := s.cli.Put(ctx, s.intentKey(in.App, in.Digest), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return unavailable("write the intent of "+in.App, err)
	}
	return nil
}

// FindIntent returns the intent recorded for the document with digest d
// (nil when none).
func (s *Store) FindIntent(ctx context.Context, app, d string) (*Intent, error) {
	resp, err := s.cli.Get(ctx, s.intentKey(app, d))
	if err != nil {
		return nil, unavailable("read the intent of "+app, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var in Intent
	if err := decode("intent of "+app, resp.Kvs[0].Value, &in, func() int { return in.Schema }); err != nil {
		return nil, err
	}
	return &in, nil
}

// DeleteIntent removes an intent (a write that failed).
func (s *Store) DeleteIntent(ctx context.Context, app, d string) error {
	if _, err := s.cli.Delete(ctx, s.intentKey(app, d)); err != nil {
		return unavailable("delete the intent of "+app, err)
	}
	return nil
}

// ConfigIdentities names the config identities the app's kept revisions
// are bound to: the config history must keep them for a rollback to any
// kept revision (configrelease.WithProtect).
func (s *Store) ConfigIdentities(ctx context.Context, app string) (map[string]bool, error) {
	revs, err := s.Revisions(ctx, app)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range revs {
		if r.Config != nil {
			out[r.Config.Identity] = true
		}
	}
	return out, nil
}
