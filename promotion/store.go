package promotion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/internal/etcdjson"
)

// DefaultPrefix is where the Store keeps its records in graylane's etcd.
// The environment enters every key:
//
//	<prefix>bundles/<app>/<digest>   Bundle (content-addressed: the same everywhere)
//	<prefix>state/<env>/<app>        State of the app in env
//	<prefix>requests/<env>/<app>     Request: the latest promotion into env
//	<prefix>freeze/<env>             Freeze
//	<prefix>plans/<id>               Plan
const DefaultPrefix = "/graylane/environments/"

// ErrNotFound is returned (wrapped) for a missing record.
var ErrNotFound = errors.New("not found")

// Store keeps the promotion records in etcd, each with a schema version
// and written with compare-and-swap.
type Store struct {
	cli *clientv3.Client
	pre string
}

// NewStore returns a Store under prefix (DefaultPrefix if empty).
func NewStore(cli *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{cli: cli, pre: prefix}
}

func (s *Store) bundleKey(app, d string) string  { return s.pre + "bundles/" + app + "/" + d }
func (s *Store) stateKey(env, app string) string { return s.pre + "state/" + env + "/" + app }
func (s *Store) reqKey(env, app string) string   { return s.pre + "requests/" + env + "/" + app }
func (s *Store) freezeDir() string               { return s.pre + "freeze/" }
func (s *Store) planKey(id string) string        { return s.pre + "plans/" + id }

func checked(what string, schema int, err error) error {
	if err != nil {
		return err
	}
	return environments.CheckSchema(what, schema)
}

// PutBundle stores a bundle unless one with its digest exists (bundles
// are immutable).
func (s *Store) PutBundle(ctx context.Context, b environments.Bundle) error {
	b.Schema = environments.SchemaVersion
	_, err := etcdjson.Put(ctx, s.cli, s.bundleKey(b.App, b.Digest), b, 0)
	if errors.Is(err, etcdjson.ErrConflict) {
		return nil
	}
	return err
}

// Bundle returns a stored bundle, or an error wrapping ErrNotFound.
func (s *Store) Bundle(ctx context.Context, app, digest string) (environments.Bundle, error) {
	var b environments.Bundle
	rev, err := etcdjson.Get(ctx, s.cli, s.bundleKey(app, digest), &b)
	if err == nil && rev == 0 {
		return b, fmt.Errorf("bundle %s of %s: %w", environments.Short(digest), app, ErrNotFound)
	}
	return b, checked("bundle "+digest, b.Schema, err)
}

// HasBundle reports whether a bundle is stored.
func (s *Store) HasBundle(ctx context.Context, app, digest string) (bool, error) {
	resp, err := s.cli.Get(ctx, s.bundleKey(app, digest), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("read bundle %s of %s: %w", environments.Short(digest), app, err)
	}
	return resp.Count > 0, nil
}

// State returns the app's state in env and its revision (0: none).
func (s *Store) State(ctx context.Context, env, app string) (*environments.State, int64, error) {
	var st environments.State
	rev, err := etcdjson.Get(ctx, s.cli, s.stateKey(env, app), &st)
	if err != nil || rev == 0 {
		return nil, 0, err
	}
	return &st, rev, checked("state of "+app+" in "+env, st.Schema, nil)
}

// PutState writes a state with compare-and-swap.
func (s *Store) PutState(ctx context.Context, st environments.State, rev int64) error {
	st.Schema = environments.SchemaVersion
	_, err := etcdjson.Put(ctx, s.cli, s.stateKey(st.Env, st.App), st, rev)
	return err
}

// Request returns the latest request into env for app and its revision
// (nil, 0: none).
func (s *Store) Request(ctx context.Context, env, app string) (*environments.Request, int64, error) {
	var r environments.Request
	rev, err := etcdjson.Get(ctx, s.cli, s.reqKey(env, app), &r)
	if err != nil || rev == 0 {
		return nil, 0, err
	}
	return &r, rev, checked("request of "+app+" into "+env, r.Schema, nil)
}

// PutRequest writes a request with compare-and-swap.
func (s *Store) PutRequest(ctx context.Context, r environments.Request, rev int64) error {
	r.Schema = environments.SchemaVersion
	_, err := etcdjson.Put(ctx, s.cli, s.reqKey(r.Env, r.App), r, rev)
	return err
}

// Freezes returns every freeze by environment, and the store revision to
// watch from.
func (s *Store) Freezes(ctx context.Context) (map[string]environments.Freeze, int64, error) {
	resp, err := s.cli.Get(ctx, s.freezeDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("read freezes: %w", err)
	}
	out := map[string]environments.Freeze{}
	for _, kv := range resp.Kvs {
		var f environments.Freeze
		if err := json.Unmarshal(kv.Value, &f); err != nil {
			return nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if err := environments.CheckSchema("freeze of "+f.Env, f.Schema); err != nil {
			return nil, 0, err
		}
		out[f.Env] = f
	}
	return out, resp.Header.Revision, nil
}

// WatchFreezes signals (coalesced) after every change to freezes from
// rev on, until ctx ends or the watch fails (the channel closes).
func (s *Store) WatchFreezes(ctx context.Context, rev int64) <-chan struct{} {
	out := make(chan struct{}, 1)
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.freezeDir(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	go func() {
		defer close(out)
		for resp := range wch {
			if resp.Err() != nil {
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// PutFreeze freezes an environment (replacing its freeze).
func (s *Store) PutFreeze(ctx context.Context, f environments.Freeze) error {
	f.Schema = environments.SchemaVersion
	b, _ := json.Marshal(f)
	if _, err := s.cli.Put(ctx, s.freezeDir()+f.Env, string(b)); err != nil {
		return fmt.Errorf("freeze %s: %w", f.Env, err)
	}
	return nil
}

// DeleteFreeze unfreezes an environment.
func (s *Store) DeleteFreeze(ctx context.Context, env string) error {
	if _, err := s.cli.Delete(ctx, s.freezeDir()+env); err != nil {
		return fmt.Errorf("unfreeze %s: %w", env, err)
	}
	return nil
}

// Plan returns a plan and its revision, or an error wrapping ErrNotFound.
func (s *Store) Plan(ctx context.Context, id string) (Plan, int64, error) {
	var p Plan
	rev, err := etcdjson.Get(ctx, s.cli, s.planKey(id), &p)
	if err == nil && rev == 0 {
		return p, 0, fmt.Errorf("release plan %s: %w", id, ErrNotFound)
	}
	return p, rev, checked("plan "+id, p.Schema, err)
}

// PutPlan writes a plan with compare-and-swap (0: new).
func (s *Store) PutPlan(ctx context.Context, p Plan, rev int64) error {
	p.Schema = environments.SchemaVersion
	_, err := etcdjson.Put(ctx, s.cli, s.planKey(p.ID), p, rev)
	return err
}

// Plans returns every plan, newest first.
func (s *Store) Plans(ctx context.Context) ([]Plan, error) {
	var out []Plan
	err := etcdjson.List(ctx, s.cli, s.pre+"plans/", func(key string, data []byte, rev int64) error {
		var p Plan
		if err := json.Unmarshal(data, &p); err != nil {
			return fmt.Errorf("decode %s: %w", key, err)
		}
		out = append(out, p)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, err
}
