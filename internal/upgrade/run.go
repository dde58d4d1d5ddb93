package upgrade

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// snapshot is the cluster at one etcd revision.
type snapshot struct {
	rev        int64
	members    []Member
	older      []string
	storage    Storage
	storageRev int64
}

// read takes a snapshot in one read-only transaction.
func read(ctx context.Context, kv clientv3.KV, prefix string, presence []string) (snapshot, error) {
	membersPrefix, storageKey := prefix+"members/", prefix+"storage"
	ops := []clientv3.Op{clientv3.OpGet(storageKey), clientv3.OpGet(membersPrefix, clientv3.WithPrefix())}
	for _, p := range presence {
		ops = append(ops, clientv3.OpGet(p, clientv3.WithPrefix()))
	}
	resp, err := kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return snapshot{}, fmt.Errorf("read graylane members and schema versions under %s: %w", prefix, err)
	}
	s := snapshot{rev: resp.Header.Revision}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if s.storage, err = decodeStorage(kvs[0].Value); err != nil {
			return snapshot{}, err
		}
		s.storageRev = kvs[0].ModRevision
	}
	ids := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		m, err := decodeMember(kv.Value)
		if err != nil {
			continue // a newer graylane's record: it reads more than this one knows
		}
		s.members = append(s.members, m)
		ids[m.ID] = true
	}
	for _, r := range resp.Responses[2:] {
		for _, kv := range r.GetResponseRange().Kvs {
			if id := string(kv.Value); !ids[id] {
				ids[id] = true
				s.older = append(s.older, id)
			}
		}
	}
	slices.SortFunc(s.members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return s, nil
}

func (g *Gate) presence() []string {
	var out []string
	for _, p := range g.cfg.Presence {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (g *Gate) view(s snapshot) View {
	return View{Kinds: g.kinds, Members: s.members, Older: s.older, Storage: s.storage, Hold: g.cfg.Hold}
}

// Run keeps the member record advertised, follows members and storage
// versions, and raises and migrates when Decide says so, until ctx ends.
// Errors are logged and retried; Run returns nil when ctx ends.
func (g *Gate) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for _, p := range append([]string{g.cfg.Prefix}, g.presence()...) {
		go g.follow(wctx, p, poke)
	}
	backoff := time.Second
	for {
		g.mu.Lock()
		sess := g.sess
		g.mu.Unlock()
		var lost <-chan struct{}
		if sess != nil {
			lost = sess.Done()
		}
		err := g.evaluate(ctx)
		if err == nil {
			backoff = time.Second
		} else if ctx.Err() == nil {
			g.log.Warn("schema versions not evaluated; retrying", "err", err, "in", backoff)
		}
		timer := time.NewTimer(g.cfg.Resync)
		if err != nil {
			timer.Reset(backoff)
			backoff = min(2*backoff, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-wake:
		case <-timer.C:
		case <-lost:
			g.log.Warn("member record lease lost; advertising again")
			if err := g.advertise(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn("advertise", "err", err)
			}
		}
		timer.Stop()
	}
}

// follow watches a prefix and pokes on every change, restarting the
// watch when it fails.
func (g *Gate) follow(ctx context.Context, prefix string, poke func()) {
	for ctx.Err() == nil {
		for resp := range g.cfg.Client.Watch(ctx, prefix, clientv3.WithPrefix()) {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				if string(ev.Kv.Key) == g.storageKey {
					if ev.Type == clientv3.EventTypeDelete {
						_ = g.setStorage(nil)
					} else if err := g.setStorage([]*mvccpb.KeyValue{ev.Kv}); err != nil {
						g.log.Error("schema storage record", "err", err)
					}
				}
			}
			poke()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// evaluate decides and, if there is something to do, takes the mutex,
// decides again on a fresh snapshot and does it.
func (g *Gate) evaluate(ctx context.Context) error {
	s, err := read(ctx, g.cfg.Client, g.cfg.Prefix, g.presence())
	if err != nil {
		return err
	}
	d := g.observe(s)
	if len(d.Raise) == 0 && len(d.Migrate) == 0 {
		return nil
	}
	g.mu.Lock()
	sess := g.sess
	g.mu.Unlock()
	if sess == nil {
		return errors.New("not advertised")
	}
	mu := concurrency.NewMutex(sess, g.lockPrefix)
	if err := mu.Lock(ctx); err != nil {
		return fmt.Errorf("schema migration mutex %s: %w", g.lockPrefix, err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = mu.Unlock(uctx)
	}()
	if s, err = read(ctx, g.cfg.Client, g.cfg.Prefix, g.presence()); err != nil {
		return err
	}
	d = g.observe(s)
	if len(d.Raise) > 0 {
		if s, err = g.raise(ctx, s, d.Raise); err != nil {
			return err
		}
	}
	return g.migrate(ctx, s, d.Migrate)
}

// observe decides on s, keeps the cache and logs what changed.
func (g *Gate) observe(s snapshot) Decision {
	d := Decide(g.view(s))
	g.mu.Lock()
	if s.storageRev >= g.storageRev {
		g.storage, g.storageRev = s.storage, s.storageRev
	}
	changed := !slices.Equal(g.waiting, d.Waiting)
	g.waiting = d.Waiting
	g.mu.Unlock()
	if d.Refuse != nil {
		g.log.Error("etcd holds records this graylane does not read; it refuses them", "err", d.Refuse)
	}
	if changed {
		for _, w := range d.Waiting {
			g.log.Info("schema migration waiting", "why", w)
		}
	}
	return d
}

// raise writes the new storage versions if nothing changed since s: the
// storage record, and no member or older graylane joined.
func (g *Gate) raise(ctx context.Context, s snapshot, raise map[string]int) (snapshot, error) {
	next := s.storage
	next.Kinds = maps.Clone(next.Kinds)
	if next.Kinds == nil {
		next.Kinds = map[string]int{}
	}
	maps.Copy(next.Kinds, raise)
	next.RaisedBy = g.Self().String()
	next.RaisedAt = g.cfg.Clock.Now().UTC()
	b, err := encode(StorageKind(), next)
	if err != nil {
		return s, err
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(g.storageKey), "=", s.storageRev),
		clientv3.Compare(clientv3.ModRevision(g.membersPrefix), "<", s.rev+1).WithPrefix(),
	}
	for _, p := range g.presence() {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p), "<", s.rev+1).WithPrefix())
	}
	resp, err := g.cfg.Client.Txn(ctx).If(cmps...).Then(clientv3.OpPut(g.storageKey, string(b))).Commit()
	if err != nil {
		return s, fmt.Errorf("raise schema versions: %w", err)
	}
	if !resp.Succeeded {
		return s, errors.New("raise schema versions: members or versions changed meanwhile; deciding again")
	}
	var who []string
	for _, m := range s.members {
		who = append(who, m.String())
	}
	for k, v := range raise {
		g.log.Info("schema version raised: every live graylane reads it; records are written at it from now on",
			"kind", k, "from", s.storage.Kinds[k], "to", v, "members", strings.Join(who, ", "))
	}
	s.storage, s.storageRev = next, resp.Header.Revision
	g.mu.Lock()
	if s.storageRev >= g.storageRev {
		g.storage, g.storageRev = s.storage, s.storageRev
	}
	g.mu.Unlock()
	return s, nil
}

// migrate rewrites the records of each kind to its version and records it.
func (g *Gate) migrate(ctx context.Context, s snapshot, kinds map[string]int) error {
	for _, name := range slices.Sorted(maps.Keys(kinds)) {
		version := kinds[name]
		began := time.Now()
		var total MigrateStats
		for _, c := range g.cfg.Collections {
			if c.Kind.Name != name {
				continue
			}
			st, err := Migrate(ctx, g.cfg.Client, c, version, g.log)
			total.Migrated += st.Migrated
			total.Current += st.Current
			total.Skipped += st.Skipped
			if err != nil {
				return err
			}
		}
		next := s.storage
		next.Migrated = maps.Clone(next.Migrated)
		if next.Migrated == nil {
			next.Migrated = map[string]int{}
		}
		next.Migrated[name] = version
		b, err := encode(StorageKind(), next)
		if err != nil {
			return err
		}
		resp, err := g.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(g.storageKey), "=", s.storageRev)).
			Then(clientv3.OpPut(g.storageKey, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("record the migration of %s: %w", name, err)
		}
		if !resp.Succeeded {
			return errors.New("schema versions changed during the migration; deciding again")
		}
		s.storage, s.storageRev = next, resp.Header.Revision
		g.log.Info("records migrated", "kind", name, "to", version, "migrated", total.Migrated,
			"alreadyCurrent", total.Current, "skipped", total.Skipped, "took", time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// Waiting says why versions are not raised yet (empty when none wait).
func (g *Gate) Waiting() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.waiting)
}
