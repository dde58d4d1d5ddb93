package etcdreg

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/sdk"
)

// Defaults of Config.
const (
	DefaultTTL = 10 * time.Second
	MinTTL     = 2 * time.Second
	MaxTTL     = 10 * time.Minute
)

// ErrNotFound is returned (wrapped, with configsync.ErrNotFound) by
// Heartbeat and Delete for an instance that is not registered (any more).
var ErrNotFound = configsync.ErrNotFound

// Config configures a Registry.
type Config struct {
	// Client is the etcd client (the caller keeps it).
	Client *clientv3.Client
	// Prefix is where instances live (gray.DefaultInstancePrefix).
	Prefix string
	// TTL is the lease of a registration Register keeps alive (DefaultTTL):
	// an instance that dies unannounced disappears after at most TTL.
	TTL time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Registry registers instances in etcd and follows them: each instance is
// one key {prefix}{app}/{version}/{id} holding its gray.Instance as JSON,
// bound to a lease, so it disappears when its instance stops renewing.
type Registry struct {
	cli    *clientv3.Client
	prefix string
	ttl    time.Duration
	log    *slog.Logger
}

var (
	_ sdk.Registrar = (*Registry)(nil)
	_ sdk.Discovery = (*Registry)(nil)
)

// New returns a Registry.
func New(cfg Config) *Registry {
	if cfg.Prefix == "" {
		cfg.Prefix = gray.DefaultInstancePrefix
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	return &Registry{cli: cfg.Client, prefix: cfg.Prefix, ttl: max(cfg.TTL, MinTTL), log: cfg.Logger.With("registry", "etcd")}
}

// Rules returns the source of published gray documents in etcd
// ({prefix}{app}; prefix "" is gray.DefaultRulesPrefix), for sdk.Config.Rules.
func Rules(cli *clientv3.Client, prefix string) *etcdsource.Source {
	if prefix == "" {
		prefix = gray.DefaultRulesPrefix
	}
	return etcdsource.New(etcdsource.Config{Client: cli, Prefix: prefix})
}

func (r *Registry) key(in gray.Instance) string {
	return gray.InstanceKey(r.prefix, in.App, in.Version, in.ID)
}

func encode(in gray.Instance) (string, error) {
	if in.RegisteredAt.IsZero() {
		in.RegisteredAt = time.Now().UTC().Truncate(time.Millisecond)
	}
	b, err := json.Marshal(in)
	return string(b), err
}

// Register registers in under a lease of Config.TTL and renews it until
// ctx ends or Deregister. If the lease is lost (etcd unreachable for
// longer than the TTL, or restarted), it registers again as soon as etcd
// answers.
func (r *Registry) Register(ctx context.Context, in gray.Instance) (sdk.Registration, error) {
	if err := in.Check(); err != nil {
		return nil, fmt.Errorf("etcd registry: register: %w", err)
	}
	val, err := encode(in)
	if err != nil {
		return nil, fmt.Errorf("etcd registry: register %s: %w", in.ID, err)
	}
	lease, err := r.put(ctx, r.key(in), val)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	reg := &registration{r: r, key: r.key(in), val: val, cancel: cancel, done: make(chan struct{})}
	reg.lease.Store(lease)
	go reg.keepAlive(lctx, lease)
	return reg, nil
}

// put grants a lease and writes key under it.
func (r *Registry) put(ctx context.Context, key, val string) (clientv3.LeaseID, error) {
	g, err := r.cli.Grant(ctx, int64(r.ttl/time.Second))
	if err != nil {
		return 0, fmt.Errorf("etcd registry: grant lease for %s: %w: %w", key, configsync.ErrUnavailable, err)
	}
	if _, err := r.cli.Put(ctx, key, val, clientv3.WithLease(g.ID)); err != nil {
		_, _ = r.cli.Revoke(context.WithoutCancel(ctx), g.ID)
		return 0, fmt.Errorf("etcd registry: write %s: %w: %w", key, configsync.ErrUnavailable, err)
	}
	return g.ID, nil
}

type registration struct {
	r      *Registry
	key    string
	val    string
	lease  syncLease
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type syncLease struct {
	mu sync.Mutex
	id clientv3.LeaseID
}

func (l *syncLease) Store(id clientv3.LeaseID) { l.mu.Lock(); l.id = id; l.mu.Unlock() }
func (l *syncLease) Load() clientv3.LeaseID    { l.mu.Lock(); defer l.mu.Unlock(); return l.id }

func (g *registration) keepAlive(ctx context.Context, lease clientv3.LeaseID) {
	defer close(g.done)
	backoff := 100 * time.Millisecond
	for {
		ch, err := g.r.cli.KeepAlive(ctx, lease)
		if err == nil {
			for range ch {
				backoff = 100 * time.Millisecond
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The lease expired or etcd went away: register again.
		g.r.log.Warn("registration lease lost; registering again", "key", g.key, "err", err)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			pctx, cancel := context.WithTimeout(ctx, g.r.ttl)
			id, err := g.r.put(pctx, g.key, g.val)
			cancel()
			if err == nil {
				lease = id
				g.lease.Store(id)
				g.r.log.Info("registered again", "key", g.key)
				break
			}
		}
	}
}

// Deregister revokes the lease, which deletes the key at once.
func (g *registration) Deregister(ctx context.Context) error {
	var err error
	g.once.Do(func() {
		g.cancel()
		<-g.done
		if _, rerr := g.r.cli.Revoke(ctx, g.lease.Load()); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			err = fmt.Errorf("etcd registry: deregister %s: %w", g.key, rerr)
		}
	})
	return err
}

// List returns app's instances ("" for every app), sorted by app, version
// and ID.
func (r *Registry) List(ctx context.Context, app string) ([]gray.Instance, error) {
	resp, err := r.cli.Get(ctx, r.watchPrefix(app), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd registry: list %s: %w: %w", r.watchPrefix(app), configsync.ErrUnavailable, err)
	}
	state := map[string]gray.Instance{}
	for _, kv := range resp.Kvs {
		if in, ok := r.decode(string(kv.Key), kv.Value); ok {
			state[string(kv.Key)] = in
		}
	}
	return sorted(state), nil
}

func (r *Registry) watchPrefix(app string) string {
	if app == "" {
		return r.prefix
	}
	return r.prefix + app + "/"
}

// decode reads one key; malformed keys and values are skipped (logged).
// The key is authoritative for app, version and ID.
func (r *Registry) decode(key string, val []byte) (gray.Instance, bool) {
	app, version, id, ok := gray.ParseInstanceKey(r.prefix, key)
	if !ok {
		return gray.Instance{}, false
	}
	var in gray.Instance
	if err := json.Unmarshal(val, &in); err != nil {
		r.log.Warn("ignoring a malformed registration", "key", key, "err", err)
		return gray.Instance{}, false
	}
	in.App, in.Version, in.ID = app, version, id
	return in, true
}

func sorted(state map[string]gray.Instance) []gray.Instance {
	out := make([]gray.Instance, 0, len(state))
	for _, in := range state {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b gray.Instance) int {
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Version, b.Version), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Watch follows app's instances ("" for every app): the full list first,
// then again on every change. A slow reader gets the latest list. While
// etcd is unreachable the last list stands; after a compaction or a lost
// watch it lists again.
func (r *Registry) Watch(ctx context.Context, app string) <-chan []gray.Instance {
	out := make(chan []gray.Instance, 1)
	go r.watch(ctx, app, out)
	return out
}

func (r *Registry) watch(ctx context.Context, app string, out chan []gray.Instance) {
	defer close(out)
	prefix := r.watchPrefix(app)
	send := func(list []gray.Instance) {
		select { // keep only the latest list
		case <-out:
		default:
		}
		out <- list
	}
	backoff := 100 * time.Millisecond
	var last []gray.Instance
	sent := false
	for ctx.Err() == nil {
		resp, err := r.cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		state := map[string]gray.Instance{}
		for _, kv := range resp.Kvs {
			if in, ok := r.decode(string(kv.Key), kv.Value); ok {
				state[string(kv.Key)] = in
			}
		}
		emit := func() {
			cur := sorted(state)
			if sent && slices.EqualFunc(cur, last, sameInstance) {
				return
			}
			last, sent = cur, true
			send(cur)
		}
		emit()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range r.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break // compacted or lost leader: list again
			}
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypeDelete {
					delete(state, k)
				} else if in, ok := r.decode(k, ev.Kv.Value); ok {
					state[k] = in
				}
			}
			emit()
		}
		cancel()
	}
}

func sameInstance(a, b gray.Instance) bool {
	if a.App != b.App || a.Version != b.Version || a.ID != b.ID || a.Addr != b.Addr || a.Ready != b.Ready || len(a.Meta) != len(b.Meta) {
		return false
	}
	for k, v := range a.Meta {
		if b.Meta[k] != v {
			return false
		}
	}
	return true
}

// Put registers in under a fresh lease of ttl without renewing it: the
// caller sends heartbeats (Heartbeat) more often than ttl, as graylane's
// POST /api/v1/instances does for services that do not talk to etcd. An
// instance registered already (same app and ID) is replaced.
func (r *Registry) Put(ctx context.Context, in gray.Instance, ttl time.Duration) (gray.Instance, error) {
	if err := in.Check(); err != nil {
		return gray.Instance{}, fmt.Errorf("etcd registry: register: %w", err)
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return gray.Instance{}, fmt.Errorf("etcd registry: register %s: ttl %s is outside %s..%s", in.ID, ttl, MinTTL, MaxTTL)
	}
	old, err := r.find(ctx, in.App, in.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return gray.Instance{}, err
	}
	in.RegisteredAt = time.Now().UTC().Truncate(time.Millisecond)
	val, err := encode(in)
	if err != nil {
		return gray.Instance{}, fmt.Errorf("etcd registry: register %s: %w", in.ID, err)
	}
	g, err := r.cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return gray.Instance{}, fmt.Errorf("etcd registry: grant lease for %s: %w: %w", in.ID, configsync.ErrUnavailable, err)
	}
	ops := []clientv3.Op{clientv3.OpPut(r.key(in), val, clientv3.WithLease(g.ID))}
	if old.key != "" && old.key != r.key(in) {
		ops = append(ops, clientv3.OpDelete(old.key)) // the instance changed version
	}
	if _, err := r.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		_, _ = r.cli.Revoke(context.WithoutCancel(ctx), g.ID)
		return gray.Instance{}, fmt.Errorf("etcd registry: write %s: %w: %w", r.key(in), configsync.ErrUnavailable, err)
	}
	if old.lease != 0 && old.lease != g.ID {
		_, _ = r.cli.Revoke(ctx, old.lease) // the old key was overwritten or deleted
	}
	return in, nil
}

type found struct {
	key   string
	lease clientv3.LeaseID
	in    gray.Instance
}

// find locates app's instance id (under any version).
func (r *Registry) find(ctx context.Context, app, id string) (found, error) {
	resp, err := r.cli.Get(ctx, r.watchPrefix(app), clientv3.WithPrefix())
	if err != nil {
		return found{}, fmt.Errorf("etcd registry: find %s/%s: %w: %w", app, id, configsync.ErrUnavailable, err)
	}
	for _, kv := range resp.Kvs {
		if in, ok := r.decode(string(kv.Key), kv.Value); ok && in.ID == id {
			return found{key: string(kv.Key), lease: clientv3.LeaseID(kv.Lease), in: in}, nil
		}
	}
	return found{}, fmt.Errorf("etcd registry: instance %s of %s: %w", id, app, ErrNotFound)
}

// Heartbeat renews the lease of a registration made with Put. It returns
// an error wrapping ErrNotFound when the registration has expired: the
// instance must register again.
func (r *Registry) Heartbeat(ctx context.Context, app, id string) (gray.Instance, error) {
	f, err := r.find(ctx, app, id)
	if err != nil {
		return gray.Instance{}, err
	}
	if _, err := r.cli.KeepAliveOnce(ctx, f.lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return gray.Instance{}, fmt.Errorf("etcd registry: instance %s of %s expired: %w", id, app, ErrNotFound)
		}
		return gray.Instance{}, fmt.Errorf("etcd registry: heartbeat %s of %s: %w: %w", id, app, configsync.ErrUnavailable, err)
	}
	return f.in, nil
}

// Delete removes app's instance id. Removing a missing instance is not an
// error.
func (r *Registry) Delete(ctx context.Context, app, id string) error {
	f, err := r.find(ctx, app, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if f.lease != 0 {
		if _, err := r.cli.Revoke(ctx, f.lease); err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil
		}
	}
	if _, err := r.cli.Delete(ctx, f.key); err != nil {
		return fmt.Errorf("etcd registry: delete %s: %w: %w", f.key, configsync.ErrUnavailable, err)
	}
	return nil
}
