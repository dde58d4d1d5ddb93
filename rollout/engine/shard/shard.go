package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/rollout/engine"
)

// DefaultPrefix is where the shard keys live unless configured otherwise.
const DefaultPrefix = "/graylane/shard/"

// Config configures a Shard.
type Config struct {
	Client *clientv3.Client
	// Prefix holds members/ and owners/ (default DefaultPrefix).
	Prefix string
	// ID names this replica (ha.id); it must be unique among live replicas.
	ID string
	// API is this replica's API address, shown to the others.
	API string
	// TTL is the lease's time to live (default 10s; etcd rounds it up to
	// whole seconds and to its own minimum).
	TTL time.Duration
	// Clock defaults to the real clock. The lease deadline is measured on
	// it (use a monotonic clock: the real one is).
	Clock  clock.Clock
	Logger *slog.Logger
}

// Member is one live replica.
type Member struct {
	ID    string    `json:"id"`
	API   string    `json:"api,omitempty"`
	Since time.Time `json:"since"`
}

// Shard is this replica's membership and the apps it holds.
type Shard struct {
	cfg Config
	log *slog.Logger

	mu       sync.RWMutex
	active   bool
	lease    clientv3.LeaseID
	deadline time.Time
	members  []string // sorted ids of the live members
	info     map[string]Member
	held     map[string]engine.Fence
}

var _ engine.Shard = (*Shard)(nil)

// New returns a Shard; Term starts a membership term.
func New(cfg Config) (*Shard, error) {
	if cfg.Client == nil {
		return nil, errors.New("shard: Config.Client is required")
	}
	if cfg.ID == "" || strings.ContainsAny(cfg.ID, "/\x00") {
		return nil, fmt.Errorf("shard: ha.id %q must be non-empty and hold no '/'", cfg.ID)
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
	cfg.Clock = clock.Or(cfg.Clock)
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	return &Shard{cfg: cfg, log: cfg.Logger.With("replica", cfg.ID), held: map[string]engine.Fence{}, info: map[string]Member{}}, nil
}

func (s *Shard) membersPrefix() string      { return s.cfg.Prefix + "members/" }
func (s *Shard) ownersPrefix() string       { return s.cfg.Prefix + "owners/" }
func (s *Shard) ownerKey(app string) string { return s.ownersPrefix() + app }

// ID implements engine.Shard.
func (s *Shard) ID() string { return s.cfg.ID }

// ErrLeaseExpired: this replica's lease may have expired; it must not act.
var ErrLeaseExpired = errors.New("this replica's lease may have expired")

// Term implements engine.Shard: grant a lease, register, watch the members
// and the owners, and keep the lease alive until it is lost or ctx ends
// (then the lease is revoked, so the others take over at once).
func (s *Shard) Term(ctx context.Context, ready func(), changed func(app string)) error {
	ttl := max(1, int64((s.cfg.TTL+time.Second-1)/time.Second))
	sent := s.cfg.Clock.Now()
	grant, err := s.cfg.Client.Grant(ctx, ttl)
	if err != nil {
		return fmt.Errorf("grant a %ds lease: %w", ttl, err)
	}
	lease := grant.ID
	s.mu.Lock()
	s.lease, s.deadline, s.held = lease, sent.Add(time.Duration(grant.TTL)*time.Second), map[string]engine.Fence{}
	s.mu.Unlock()
	defer s.end(ctx, lease)

	if err := s.register(ctx, lease); err != nil {
		return err
	}
	rev, err := s.listMembers(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.active = true
	s.mu.Unlock()
	s.log.Info("joined", "members", s.Members(), "lease", fmt.Sprintf("%x", lease), "ttl", time.Duration(grant.TTL)*time.Second)

	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.watchMembers(tctx, rev, changed); cancel() }()
	go func() { defer wg.Done(); s.watchOwners(tctx, rev, changed); cancel() }()
	ready()
	err = s.keepAlive(tctx, lease)
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// end closes a term: nothing is held any more; on a clean stop (ctx
// ended) the lease is revoked, which deletes the member and owner keys.
func (s *Shard) end(ctx context.Context, lease clientv3.LeaseID) {
	s.mu.Lock()
	s.active = false
	s.held = map[string]engine.Fence{}
	s.deadline = time.Time{}
	s.mu.Unlock()
	if ctx.Err() != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := s.cfg.Client.Revoke(rctx, lease); err == nil {
			s.log.Info("left: lease revoked, the others take this replica's apps")
		}
	}
}

// register creates this replica's member key, waiting while another live
// process holds the same id (an earlier run whose lease has not expired).
func (s *Shard) register(ctx context.Context, lease clientv3.LeaseID) error {
	key := s.membersPrefix() + s.cfg.ID
	val, _ := json.Marshal(Member{ID: s.cfg.ID, API: s.cfg.API, Since: s.cfg.Clock.Now().UTC()})
	warned := false
	for {
		resp, err := s.cfg.Client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lease))).
			Commit()
		if err != nil {
			return fmt.Errorf("register %s: %w", key, err)
		}
		if resp.Succeeded {
			return nil
		}
		if !warned {
			s.log.Warn("ha.id is registered by another live replica (or this one's previous run, until its lease expires); waiting", "key", key)
			warned = true
		}
		if err := s.renew(ctx, lease); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// listMembers reads the live members and returns the revision read at.
func (s *Shard) listMembers(ctx context.Context) (int64, error) {
	resp, err := s.cfg.Client.Get(ctx, s.membersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list members: %w", err)
	}
	info := map[string]Member{}
	for _, kv := range resp.Kvs {
		var m Member
		id := strings.TrimPrefix(string(kv.Key), s.membersPrefix())
		_ = json.Unmarshal(kv.Value, &m)
		m.ID = id
		info[id] = m
	}
	s.setMembers(info)
	return resp.Header.Revision, nil
}

func (s *Shard) setMembers(info map[string]Member) {
	ids := make([]string, 0, len(info))
	for id := range info {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	s.mu.Lock()
	s.info, s.members = info, ids
	s.mu.Unlock()
}

// watchMembers follows the members; every change asks the engine to look
// at every app (changed("")).
func (s *Shard) watchMembers(ctx context.Context, rev int64, changed func(string)) {
	for ctx.Err() == nil {
		wch := s.cfg.Client.Watch(clientv3.WithRequireLeader(ctx), s.membersPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				s.log.Warn("members watch failed; listing again", "err", err)
				break
			}
			s.mu.RLock()
			info := make(map[string]Member, len(s.info)+1)
			for k, v := range s.info {
				info[k] = v
			}
			s.mu.RUnlock()
			for _, ev := range resp.Events {
				id := strings.TrimPrefix(string(ev.Kv.Key), s.membersPrefix())
				if ev.Type == clientv3.EventTypeDelete {
					delete(info, id)
					continue
				}
				var m Member
				_ = json.Unmarshal(ev.Kv.Value, &m)
				m.ID = id
				info[id] = m
			}
			s.setMembers(info)
			rev = resp.Header.Revision
			s.log.Info("members changed", "members", s.Members())
			changed("")
		}
		if ctx.Err() != nil {
			return
		}
		var err error
		if rev, err = s.listMembers(ctx); err != nil {
			s.log.Warn("list members", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		changed("")
	}
}

// watchOwners follows deletions of ownership keys: an app given up or
// whose owner's lease expired can be taken by the replica it belongs to.
func (s *Shard) watchOwners(ctx context.Context, rev int64, changed func(string)) {
	for ctx.Err() == nil {
		wch := s.cfg.Client.Watch(clientv3.WithRequireLeader(ctx), s.ownersPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterPut())
		for resp := range wch {
			if err := resp.Err(); err != nil {
				s.log.Warn("owners watch failed; looking at every app", "err", err)
				break
			}
			rev = resp.Header.Revision
			for _, ev := range resp.Events {
				app := strings.TrimPrefix(string(ev.Kv.Key), s.ownersPrefix())
				s.mu.Lock()
				if f, ok := s.held[app]; ok && f.Token == ev.Kv.CreateRevision {
					delete(s.held, app) // ours went (revoked by hand?): not held any more
				}
				s.mu.Unlock()
				changed(app)
			}
		}
		if ctx.Err() != nil {
			return
		}
		resp, err := s.cfg.Client.Get(ctx, s.ownersPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		rev = resp.Header.Revision
		changed("") // deletions may have been missed
	}
}

// keepAlive renews the lease every TTL/3 until it is lost or ctx ends.
// The deadline is the time the last successful renewal was sent plus the
// TTL granted: etcd counts from when it received it, later, so the local
// deadline never outlives the lease.
func (s *Shard) keepAlive(ctx context.Context, lease clientv3.LeaseID) error {
	every := max(s.cfg.TTL/3, 200*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
		if err := s.renew(ctx, lease); err != nil {
			return err
		}
	}
}

// renew sends one keep-alive, retrying until it works, the lease is known
// lost, or the deadline passes.
func (s *Shard) renew(ctx context.Context, lease clientv3.LeaseID) error {
	for {
		sent := s.cfg.Clock.Now()
		rctx, cancel := context.WithTimeout(ctx, max(s.cfg.TTL/3, time.Second))
		resp, err := s.cfg.Client.KeepAliveOnce(rctx, lease)
		cancel()
		if err == nil && resp.TTL > 0 {
			s.mu.Lock()
			s.deadline = sent.Add(time.Duration(resp.TTL) * time.Second)
			s.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0) {
			s.log.Warn("lease lost: this replica's apps are the others' now")
			return fmt.Errorf("lease %x: %w", lease, ErrLeaseExpired)
		}
		s.mu.RLock()
		past := !s.cfg.Clock.Now().Before(s.deadline)
		s.mu.RUnlock()
		if past {
			s.log.Warn("lease not renewed before its deadline", "err", err)
			return fmt.Errorf("renew lease %x: %v: %w", lease, err, ErrLeaseExpired)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Check implements engine.Shard.
func (s *Shard) Check() error {
	s.mu.RLock()
	active, deadline := s.active, s.deadline
	s.mu.RUnlock()
	if !active || !s.cfg.Clock.Now().Before(deadline) {
		return ErrLeaseExpired
	}
	return nil
}

// Mine implements engine.Shard.
func (s *Shard) Mine(app string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.active && Owner(app, s.members) == s.cfg.ID
}

// Held implements engine.Shard.
func (s *Shard) Held(app string) (engine.Fence, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.held[app]
	return f, ok
}

// HeldCount is how many apps this replica holds.
func (s *Shard) HeldCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.held)
}

// Acquire implements engine.Shard.
func (s *Shard) Acquire(ctx context.Context, app string) (engine.Fence, error) {
	if err := s.Check(); err != nil {
		return engine.Fence{}, err
	}
	s.mu.RLock()
	lease := s.lease
	s.mu.RUnlock()
	key := s.ownerKey(app)
	resp, err := s.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, s.cfg.ID, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return engine.Fence{}, fmt.Errorf("take %s: %w", key, err)
	}
	f := engine.Fence{Key: key, Token: resp.Header.Revision, Holder: s.cfg.ID}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return engine.Fence{}, fmt.Errorf("take %s: changed meanwhile: %w", key, engine.ErrHeldElsewhere)
		}
		if clientv3.LeaseID(kvs[0].Lease) != lease {
			return engine.Fence{}, fmt.Errorf("%s is held by %s: %w", app, string(kvs[0].Value), engine.ErrHeldElsewhere)
		}
		f.Token = kvs[0].CreateRevision // ours already (this term)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active || s.lease != lease {
		return engine.Fence{}, ErrLeaseExpired
	}
	s.held[app] = f
	return f, nil
}

// Release implements engine.Shard.
func (s *Shard) Release(ctx context.Context, app string) error {
	s.mu.Lock()
	f, ok := s.held[app]
	delete(s.held, app)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	_, err := s.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Token)).
		Then(clientv3.OpDelete(f.Key)).
		Commit()
	if err != nil {
		return fmt.Errorf("give up %s: %w", f.Key, err)
	}
	return nil
}

// Lost implements engine.Shard.
func (s *Shard) Lost(app string) {
	s.mu.Lock()
	delete(s.held, app)
	s.mu.Unlock()
}

// Members returns the live members, sorted by id.
func (s *Shard) Members() []Member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Member, 0, len(s.members))
	for _, id := range s.members {
		out = append(out, s.info[id])
	}
	return out
}

// Status implements engine.Shard.
func (s *Shard) Status() engine.ShardStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return engine.ShardStatus{ID: s.cfg.ID, Active: s.active, Members: append([]string(nil), s.members...), Held: len(s.held)}
}
