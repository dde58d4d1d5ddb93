package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/internal/upgrade"
)

// SchemaVersion is the version of the records this package writes.
const SchemaVersion = 1

// ErrNewerSchema is returned (wrapped) for a record written by a newer
// graylane: schema.ErrNewer, as for every record kind.
var ErrNewerSchema = schema.ErrNewer

// RecordKind is the schema of audit records (docs/upgrades.md), born at
// version 1. Writes do not go through the upgrade Gate yet: the release
// that adds a step must write at upgrade.Gate.WriteAt's version.
func RecordKind() schema.Kind {
	return schema.Kind{Name: "audit-record", What: "audit record", Current: SchemaVersion, Unversioned: 1}
}

// Collection is where a Store under prefix (DefaultPrefix when empty)
// keeps its records, for the upgrade Gate.
func Collection(prefix string) upgrade.Collection {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return upgrade.Collection{Kind: RecordKind(), Prefix: prefix, Children: true}
}

// Outcomes.
const (
	// Allowed: the request was authorised and did what it asked.
	Allowed = "allowed"
	// Denied: authentication or authorisation refused it.
	Denied = "denied"
	// Failed: authorised, but it failed (bad input, conflict, centre
	// down); nothing or only part was changed, Error says why.
	Failed = "failed"
)

// Actors that are not token names.
const (
	// Unauthenticated is the actor of requests without a valid token.
	Unauthenticated = "unauthenticated"
	// CentrePrefix starts the actor of an edit made in a config centre:
	// "centre:etcd", "centre:nacos", "centre:apollo".
	CentrePrefix = "centre:"
)

// Record is one audited action.
type Record struct {
	Schema int `json:"schema"`
	// ID orders records: the time in nanoseconds and a random suffix.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Actor is the token name ("anonymous" without tokens,
	// Unauthenticated, or CentrePrefix+centre).
	Actor string `json:"actor"`
	// Via is api, console or centre.
	Via string `json:"via"`
	// Source is the caller's address.
	Source string `json:"source,omitempty"`
	Method string `json:"method,omitempty"`
	// Route is the API route ("/api/v1/apps/:app/version").
	Route string `json:"route,omitempty"`
	// Action says what was asked ("set version v2").
	Action string `json:"action"`
	// Env is the environment acted on ("" for a graylane without
	// environments, or an action on none).
	Env string `json:"env,omitempty"`
	App string `json:"app,omitempty"`
	// Target is what was acted on (the request path, an instance).
	Target  string `json:"target,omitempty"`
	Outcome string `json:"outcome"`
	Status  int    `json:"status,omitempty"`
	Error   string `json:"error,omitempty"`
	// Content is the request's essential content, redacted.
	Content map[string]any `json:"content,omitempty"`
	// Count is the number of requests an aggregated record stands for.
	Count int `json:"count,omitempty"`
	// Diff is a centre edit's document diff (redacted).
	Diff string `json:"diff,omitempty"`
}

// DefaultPrefix is where the Store keeps records in graylane's etcd:
// <prefix><20-digit unix ns>-<8 hex>.
const DefaultPrefix = "/graylane/audit/"

// DefaultRetention is how long records are kept.
const DefaultRetention = 90 * 24 * time.Hour

// StoreConfig configures a Store.
type StoreConfig struct {
	Client *clientv3.Client
	Prefix string
	// Retention is how long records are kept (DefaultRetention); Prune
	// removes older ones.
	Retention time.Duration
	Clock     clock.Clock
}

// Store keeps audit records in etcd.
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
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	cfg.Clock = clock.Or(cfg.Clock)
	return &Store{cfg: cfg, cli: cfg.Client, pre: cfg.Prefix}
}

func (s *Store) key(id string) string          { return s.pre + id }
func (s *Store) at(t time.Time) string         { return fmt.Sprintf("%s%020d", s.pre, t.UnixNano()) }
func idAt(t time.Time) string                  { return fmt.Sprintf("%020d-%s", t.UnixNano(), randid.Hex(4)) }
func unavailable(what string, err error) error { return fmt.Errorf("%s: etcd: %w", what, err) }

// Append writes r (stamping its ID, time and schema); a record is never
// replaced.
func (s *Store) Append(ctx context.Context, r Record) error {
	if r.Time.IsZero() {
		r.Time = s.cfg.Clock.Now()
	}
	r.Schema = SchemaVersion
	r.ID = idAt(r.Time)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	k := s.key(r.ID)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(b))).Commit()
	if err != nil {
		return unavailable("append audit record", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("append audit record: %s exists", r.ID)
	}
	return nil
}

// Query selects records.
type Query struct {
	// App and Actor, when set, must match.
	App   string
	Actor string
	// Since and Until bound the time (zero: unbounded).
	Since, Until time.Time
	// Limit is the most records returned, the newest (default 100, at
	// most 1000).
	Limit int
}

// List returns the records matching q, newest first.
func (s *Store) List(ctx context.Context, q Query) ([]Record, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	end := clientv3.GetPrefixRangeEnd(s.pre)
	if !q.Until.IsZero() {
		end = s.at(q.Until.Add(time.Nanosecond))
	}
	start := s.pre
	if !q.Since.IsZero() {
		start = s.at(q.Since)
	}
	var out []Record
	// newest first, in pages, until Limit records match
	for len(out) < q.Limit {
		resp, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(500))
		if err != nil {
			return nil, unavailable("list audit records", err)
		}
		for _, kv := range resp.Kvs {
			var r Record
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				return nil, fmt.Errorf("decode audit record %s: %w", kv.Key, err)
			}
			if r.Schema > SchemaVersion {
				return nil, fmt.Errorf("audit record %s: %w", r.ID, &schema.NewerError{Kind: "audit record", Version: r.Schema, Reads: SchemaVersion})
			}
			if (q.App == "" || r.App == q.App) && (q.Actor == "" || r.Actor == q.Actor) {
				out = append(out, r)
				if len(out) == q.Limit {
					break
				}
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		end = string(resp.Kvs[len(resp.Kvs)-1].Key)
	}
	return out, nil
}

// Prune removes records older than the retention and returns how many.
func (s *Store) Prune(ctx context.Context) (int64, error) {
	resp, err := s.cli.Delete(ctx, s.pre, clientv3.WithRange(s.at(s.cfg.Clock.Now().Add(-s.cfg.Retention))))
	if err != nil {
		return 0, unavailable("prune audit records", err)
	}
	return resp.Deleted, nil
}
