package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Shard shares apps among graylane replicas (ha.mode shard; the etcd
// implementation is rollout/engine/shard). Each app belongs to one live
// replica; the replica it belongs to takes its ownership key before
// driving it, and every write and backend call is fenced by that key.
type Shard interface {
	// Term registers this replica and keeps it registered until ctx ends
	// or its lease is lost, then returns; the next call starts a new term
	// (new lease, new fences). ready is called once registered. changed,
	// which must not block, is called with an app whose ownership may
	// have moved, or with "" when the membership changed (any app may
	// have).
	Term(ctx context.Context, ready func(), changed func(app string)) error
	// Mine reports whether app belongs to this replica now.
	Mine(app string) bool
	// Held returns app's fence while this replica holds it.
	Held(app string) (Fence, bool)
	// Acquire takes app's ownership key (or returns the fence already
	// held); an error wrapping ErrHeldElsewhere while another replica
	// holds it.
	Acquire(ctx context.Context, app string) (Fence, error)
	// Claim takes the ownership keys of those of apps that no replica
	// holds, many per transaction (a takeover: a dead replica's apps,
	// all at once), with the same exclusivity and fences as Acquire. It
	// returns the apps it newly holds (Held gives their fences), also
	// when it fails part-way; apps held elsewhere are not in the answer.
	Claim(ctx context.Context, apps []string) ([]string, error)
	// Release gives app up: its key is deleted if it is still this
	// replica's.
	Release(ctx context.Context, app string) error
	// Lost forgets app without touching its key (a fenced write showed it
	// is not this replica's any more).
	Lost(app string)
	// Check returns an error once this replica's lease may have expired.
	// The engine calls it before every backend, router and config-centre
	// call, and stops there when it fails.
	Check() error
	// ID names this replica.
	ID() string
	// Status describes the membership for /readyz and the API.
	Status() ShardStatus
}

// ShardStatus is a replica's view of the membership.
type ShardStatus struct {
	ID      string   `json:"id"`
	Active  bool     `json:"active"`
	Members []string `json:"members"`
	// Held counts the apps this replica drives.
	Held int `json:"held"`
	// Documents counts the release documents this replica holds whole,
	// Digests those it holds as a digest only (the apps other replicas
	// drive): its memory grows with its share, not with every app.
	Documents int `json:"documents"`
	Digests   int `json:"digests"`
}

// Fence proves that a replica holds an app: the ownership key and its
// create revision (the fencing token, which grows with every new owner).
type Fence struct {
	Key    string
	Token  int64
	Holder string
}

// forAdapters is the fence as adapters carry it.
func (f Fence) forAdapters() adapters.Fence { return adapters.Fence{Holder: f.Holder, Token: f.Token} }

var (
	// ErrHeldElsewhere: another replica holds the app.
	ErrHeldElsewhere = errors.New("app held by another replica")
	// ErrFenced is returned (wrapped) by a fenced write whose writer no
	// longer holds the app.
	ErrFenced = errors.New("this replica no longer holds the app")
)

// FencedStore is a Store whose writes can also check that the writer
// still holds the app (required with Config.Shard).
type FencedStore interface {
	// SaveFenced is Store.Save that also requires f's key to exist with
	// create revision f.Token; otherwise it returns an error wrapping
	// ErrFenced and writes nothing.
	SaveFenced(ctx context.Context, app string, rec Record, rev int64, f Fence) (int64, error)
	// DeleteFenced is Store.Delete with the same condition.
	DeleteFenced(ctx context.Context, app string, rev int64, f Fence) error
}

// shardTerm runs one membership term: the work queue runs while the term
// lasts, for this replica's apps only; when it ends every app is dropped.
func (e *Engine) shardTerm(ctx context.Context) {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started, done := make(chan struct{}), make(chan error, 1)
	go func() {
		err := e.cfg.Shard.Term(tctx, func() { close(started) }, e.shardChanged)
		cancel()
		done <- err
	}()
	select {
	case <-started:
		e.log.Info("shard term started: driving this replica's apps", "replica", e.cfg.Shard.ID())
		e.cfg.Metrics.setShard(e.cfg.Shard.Status())
		e.thinForeign(e.allApps())
		taking := make(chan struct{})
		go func() { defer close(taking); e.takeOver(tctx) }() // takeover.go
		e.lead(tctx)
		cancel()
		<-taking
	case <-tctx.Done():
	}
	cancel()
	err := <-done
	e.takeovers.drain()
	e.dropAll()
	if ctx.Err() == nil {
		e.log.Warn("shard term ended: every app dropped; joining again", "err", err)
		sleepCtx(ctx, time.Second)
	}
}

// shardChanged is the Shard's changed callback: an app that is this
// replica's and not held goes to the takeover loop (takeover.go), which
// claims many at once; one held that is not this replica's any more gets
// a pass, which gives it up.
func (e *Engine) shardChanged(app string) {
	sh := e.cfg.Shard
	if app != "" {
		if !sh.Mine(app) {
			return
		}
		if _, held := sh.Held(app); held {
			e.Trigger(app)
		} else {
			e.takeovers.add(app)
		}
		return
	}
	e.cfg.Metrics.setShard(sh.Status())
	var take, foreign []string
	for _, a := range e.allApps() {
		_, held := sh.Held(a)
		switch mine := sh.Mine(a); {
		case mine && !held:
			take = append(take, a)
		case held && !mine:
			e.Trigger(a)
		case !mine:
			foreign = append(foreign, a)
		}
	}
	if len(take) > 0 {
		e.takeovers.add(take...)
	}
	if len(foreign) > 0 && sh.Status().Active { // see thinForeign
		e.thinDocs(foreign)
	}
}

// thinForeign keeps only digests of the documents of those of apps that
// another replica drives (configsync.State.Thin): a replica holds the
// documents of its share, and list rows and digests for the rest, so its
// memory grows with its share. A pass over an app it takes over reads the
// document from the source (latest). Nothing is thinned before the term
// started: until then every app may turn out to be this replica's. It
// returns the apps it thinned: a change to one needs no pass here, and
// when its document arrived matters only to the replica driving it.
func (e *Engine) thinForeign(apps []string) map[string]bool {
	sh := e.cfg.Shard
	if sh == nil || len(apps) == 0 || !sh.Status().Active {
		return nil
	}
	thin := map[string]bool{}
	for _, a := range apps {
		if _, held := sh.Held(a); !held && !sh.Mine(a) {
			thin[a] = true
		}
	}
	e.thinDocs(slices.Collect(maps.Keys(thin)))
	return thin
}

// thinDocs keeps only digests of apps' documents (thinForeign) and
// forgets when they arrived.
func (e *Engine) thinDocs(apps []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range apps {
		e.docs.Thin(a)
		delete(e.received, a)
		delete(e.seen, a)
	}
}

// allApps lists every app known: a document or a record.
func (e *Engine) allApps() []string {
	out := e.index.appNames()
	e.mu.Lock()
	for _, en := range e.docs.Entries() {
		out = append(out, en.App)
	}
	e.mu.Unlock()
	return out
}

// claim decides, at the start of a pass in shard mode, whether this
// replica drives app: it gives an app that is no longer its own up, and
// takes one that is. ok false ends the pass (next -1: no timer; the
// ownership watches bring the app back when it must be looked at).
func (e *Engine) claim(ctx context.Context, app string) (f Fence, ok bool, err error) {
	sh := e.cfg.Shard
	f, held := sh.Held(app)
	if !sh.Mine(app) {
		if held {
			e.handOff(ctx, app)
		}
		return Fence{}, false, nil
	}
	if held {
		return f, true, nil
	}
	f, err = sh.Acquire(ctx, app)
	switch {
	case err == nil:
		e.forgetLocal(app) // anything left from an earlier holding is stale
		e.cfg.Metrics.setShard(sh.Status())
		e.log.Debug("took app", "app", app, "token", f.Token)
		return f, true, nil
	case errors.Is(err, ErrHeldElsewhere), sh.Check() != nil:
		return Fence{}, false, nil
	default:
		return Fence{}, false, err
	}
}

// handOff gives an app that moved to another replica up, after dropping
// what this replica knew of it.
func (e *Engine) handOff(ctx context.Context, app string) {
	e.forgetLocal(app)
	e.mu.Lock()
	e.docs.Thin(app) // another replica's now
	e.mu.Unlock()
	if err := e.cfg.Shard.Release(ctx, app); err != nil {
		e.log.Warn("give an app up (its key expires with this replica's lease)", "app", app, "err", err)
	}
	e.cfg.Metrics.setShard(e.cfg.Shard.Status())
	e.log.Debug("handed app off", "app", app)
}

// dropAll forgets every app after a term ended.
func (e *Engine) dropAll() {
	e.mu.Lock()
	apps := make([]string, 0, len(e.live))
	for a := range e.live {
		apps = append(apps, a)
	}
	e.mu.Unlock()
	for _, a := range apps {
		e.forgetLocal(a)
	}
}

// forgetLocal drops what this replica holds in memory for app: the
// instances it observed, its parsed document, its analysis, its metrics
// and the adapters' per-app memory (adapters.Unloader). The index keeps
// the app's row, which the records keep current.
func (e *Engine) forgetLocal(app string) {
	e.mu.Lock()
	delete(e.live, app)
	delete(e.parsed, app)
	delete(e.received, app)
	delete(e.outageEnd, app)
	delete(e.healthHold, app)
	e.mu.Unlock()
	if e.cfg.Analysis != nil {
		e.cfg.Analysis.Stop(app)
	}
	if f, ok := e.cfg.Config.(interface{ Forget(string) }); ok && e.cfg.Config != nil {
		f.Forget(app)
	}
	if u, ok := e.cfg.Resolver.(adapters.Unloader); ok {
		u.Unload(app)
	}
	e.cfg.Metrics.forget(app)
	e.broker.Forget(app)
}

// Drives reports whether this replica drives app now: always alone, while
// leading with Config.Elect, while holding it with Config.Shard.
func (e *Engine) Drives(app string) bool {
	if e.cfg.Shard != nil {
		_, ok := e.cfg.Shard.Held(app)
		return ok
	}
	return e.Leader()
}

// ShardStatus returns the membership as this replica sees it (ok false
// outside shard mode).
func (e *Engine) ShardStatus() (ShardStatus, bool) {
	if e.cfg.Shard == nil {
		return ShardStatus{}, false
	}
	st := e.cfg.Shard.Status()
	e.mu.Lock()
	st.Digests = e.docs.ThinLen()
	st.Documents = e.docs.Len() - st.Digests
	e.mu.Unlock()
	return st, true
}

// fencedBackend and fencedRouter wrap a pass's adapters in shard mode:
// every call first checks the lease deadline.
type fencedBackend struct {
	b     adapters.Backend
	check func() error
}

func (g fencedBackend) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	if err := g.check(); err != nil {
		return nil, fmt.Errorf("not observing %s: %w", app, err)
	}
	return g.b.Observe(ctx, app)
}

func (g fencedBackend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step adapters.Step) error {
	if err := g.check(); err != nil {
		return fmt.Errorf("not applying %s: %w", rel.App, err)
	}
	return g.b.Apply(ctx, rel, want, step)
}

var (
	_ adapters.Backend       = fencedBackend{}
	_ adapters.TrafficRouter = fencedRouter{}
)

type fencedRouter struct {
	r     adapters.TrafficRouter
	check func() error
}

func (g fencedRouter) Weights(ctx context.Context, app string) (traffic.Split, error) {
	if err := g.check(); err != nil {
		return traffic.Split{}, fmt.Errorf("not reading the split of %s: %w", app, err)
	}
	return g.r.Weights(ctx, app)
}

func (g fencedRouter) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := g.check(); err != nil {
		return fmt.Errorf("not setting the split of %s: %w", rel.App, err)
	}
	return g.r.SetWeights(ctx, rel, s)
}

// fenceAdapters makes the pass's adapters fenced (shard mode): the backend
// carries the token when it can (adapters.FencedBackend), and every call
// checks the lease first.
func (p *pass) fenceAdapters() {
	if p.e.cfg.Shard == nil || p.fence.Token == 0 {
		return
	}
	check := p.e.cfg.Shard.Check
	be := p.call
	if fb, ok := be.(adapters.FencedBackend); ok {
		be = fb.WithFence(p.fence.forAdapters())
	}
	p.call = fencedBackend{b: be, check: check}
	if p.route != nil {
		p.route = fencedRouter{r: p.route, check: check}
	}
}

// saveRecord writes the pass's record, fenced in shard mode.
func (e *Engine) saveRecord(ctx context.Context, app string, rec Record, rev int64, f Fence) (int64, error) {
	if f.Token == 0 {
		return e.cfg.Store.Save(ctx, app, rec, rev)
	}
	fs, ok := e.cfg.Store.(FencedStore)
	if !ok {
		return 0, fmt.Errorf("save %s: the store cannot fence writes (shard mode needs etcdstore)", app)
	}
	rev, err := fs.SaveFenced(ctx, app, rec, rev, f)
	if errors.Is(err, ErrFenced) {
		e.cfg.Shard.Lost(app)
		e.forgetLocal(app)
	}
	return rev, err
}

// deleteRecord deletes an app's record, fenced in shard mode.
func (e *Engine) deleteRecord(ctx context.Context, app string, rev int64, f Fence) error {
	if f.Token == 0 {
		return e.cfg.Store.Delete(ctx, app, rev)
	}
	fs, ok := e.cfg.Store.(FencedStore)
	if !ok {
		return fmt.Errorf("delete %s: the store cannot fence writes (shard mode needs etcdstore)", app)
	}
	return fs.DeleteFenced(ctx, app, rev, f)
}

// Nudger carries the observe callback to the replica driving an app when
// another replica received it (ha.mode shard and leader).
type Nudger interface {
	// Nudge asks the replica driving app for a pass over it.
	Nudge(ctx context.Context, app string) error
	// Nudges returns the apps nudged from now on, until ctx ends (then the
	// channel closes); a broken watch resumes by itself.
	Nudges(ctx context.Context) <-chan string
}

// Observe asks for a pass over app at once on the replica driving it:
// here when this replica drives it, else through Config.Nudges. An app
// with neither a document nor a record yields an error wrapping
// ErrNotFound.
func (e *Engine) Observe(ctx context.Context, app string) error {
	if !e.known(ctx, app) {
		return fmt.Errorf("app %s: %w", app, ErrNotFound)
	}
	if e.Drives(app) || e.cfg.Nudges == nil {
		e.Trigger(app)
		return nil
	}
	return e.cfg.Nudges.Nudge(ctx, app)
}

// known reports whether app has a document or a list row.
func (e *Engine) known(ctx context.Context, app string) bool {
	e.mu.Lock()
	_, ok := e.docs.Get(app)
	e.mu.Unlock()
	return ok || e.index.has(app)
}

// followNudges triggers the apps nudged by other replicas (a pass over an
// app this replica does not drive ends at once).
func (e *Engine) followNudges(ctx context.Context) {
	if e.cfg.Nudges == nil {
		return
	}
	for app := range e.cfg.Nudges.Nudges(ctx) {
		e.Trigger(app)
	}
}
