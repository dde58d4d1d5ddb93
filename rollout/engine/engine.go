package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/analysis"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Resolver finds the adapters a release spec asks for.
type Resolver interface {
	// Backend returns the backend for rel.Backend.Type, or an error wrapping
	// adapters.ErrUnsupported.
	Backend(rel *spec.Release) (adapters.Backend, error)
	// Router returns the app's traffic router, or nil when traffic follows
	// instance counts.
	Router(rel *spec.Release) (adapters.TrafficRouter, error)
}

// Config configures an Engine.
type Config struct {
	Source   configsync.Source
	Store    Store
	Resolver Resolver
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Logger defaults to discarding (logx.OrDiscard).
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Workers is the number of apps reconciled at once (default
	// DefaultWorkers).
	Workers int
	// Resync is the longest time between two passes of an app that is
	// doing something (default 10s), and the first step of an idle app's
	// back-off.
	Resync time.Duration
	// IdleResync is the ceiling of an idle app's back-off (default 5m): an
	// app whose pass changed nothing and waits for nothing is looked at
	// again after Resync, then twice as long each quiet pass, up to this.
	// Any event (a new document, a command, a backend's notification, the
	// observe callback) brings a pass at once. It is the longest time a
	// crash of an idle app's instances goes unseen on a backend that
	// cannot notify.
	IdleResync time.Duration
	// Analysis runs strategy.analysis checks; nil disables analysis (checks
	// never report, so analysis steps wait for ever).
	Analysis *analysis.Runner
	// Config keeps releases' bound config in step with them (config.go);
	// nil ignores config sections.
	Config ConfigReleaser
	// Elect, if set, makes this engine one of several: it watches and
	// serves views all the time but reconciles only while it leads.
	Elect Elect
	// Hooks runs release hooks (hooks.go); nil ignores hooks sections.
	Hooks HookRunner
	// Freezer says whether the engine's environment is frozen (hooks.go);
	// nil: never.
	Freezer Freezer
	// Env names the engine's environment in metrics, logs and events
	// ("" for a graylane without environments, shown as "default").
	Env string
	// Shard, if set (instead of Elect), makes this engine one of several
	// replicas sharing the apps (sharding.go): it drives only the apps
	// that belong to it, and serves every app's view from the records.
	// The Store must be a FencedStore.
	Shard Shard
	// Nudges carries observe callbacks between replicas (with Elect or
	// Shard; nil: a callback received by a replica that does not drive
	// the app waits for the app's next timed pass).
	Nudges Nudger
	// ReplicaID names this graylane in the records it writes
	// (Record.Driver) with Elect; with Shard, Shard.ID is used.
	ReplicaID string
	// Records keeps release records: numbered revisions and who caused
	// them (records.go); nil keeps none.
	Records Recorder
}

// Elect blocks until this graylane leads (or ctx ends) and returns a
// context that ends when leadership is lost.
type Elect func(ctx context.Context) (context.Context, error)

// Engine is graylane's control loop.
type Engine struct {
	cfg Config
	log *slog.Logger

	qmu    sync.Mutex
	queue  *queue // nil while not leading
	leader bool
	// takeovers feeds the shard mode's takeover loop (takeover.go).
	takeovers *takeovers

	mu        sync.Mutex
	docs      configsync.State
	parsed    map[string]parsedDoc
	received  map[string]time.Time // when an app's newest document arrived
	seen      map[string]seen      // the same, kept for the revision it starts
	synced    chan struct{}
	isSynced  bool
	sourceErr error
	outageEnd map[string]time.Time
	// healthHold is, per app, since when its passes hold for instances
	// whose health is pending (healthhold.go).
	healthHold map[string]healthHold
	live       map[string]*live
	waiters    map[string]chan CommandResult

	broker *Broker
	// index holds every app's list row (index.go, list.go).
	index *index
}

// parsedDoc is an app's newest document from the source, parsed once
// per revision.
type parsedDoc struct {
	revision int64
	rel      *spec.Release
	err      error
}

// latestDoc is what a pass knows of the app's newest document.
type latestDoc struct {
	parsedDoc
	// present is false when the source has no document for the app.
	present bool
	// sourceDown is true while the source reports a problem: the
	// document may be stale.
	sourceDown bool
	// data and version are the document as the centre holds it.
	data    []byte
	version string
}

// latest returns the app's newest document, parsed (and cached per
// revision). A document held thin (shard mode: an app another replica
// drives, sharding.go) is read from the source first; the error is that
// read's.
func (e *Engine) latest(ctx context.Context, app string) (latestDoc, error) {
	e.mu.Lock()
	en, ok := e.docs.Get(app)
	if ok && e.docs.IsThin(app) {
		e.mu.Unlock()
		got, err := e.cfg.Source.Get(ctx, app)
		if err == nil && got.Revision < en.Revision {
			err = fmt.Errorf("read revision %d, older than the %d the watch delivered", got.Revision, en.Revision)
		}
		if err != nil {
			return latestDoc{}, fmt.Errorf("read the document of %s from %s: %w", app, e.cfg.Source.Name(), err)
		}
		e.mu.Lock()
		en, _ = e.docs.Fill(got) // kept while this replica drives the app
	}
	defer e.mu.Unlock()
	return e.parseLocked(app, en, ok), nil
}

// parseLocked is latest's answer for en, app's entry (ok false: none).
func (e *Engine) parseLocked(app string, en configsync.Entry, ok bool) latestDoc {
	down := e.sourceErr != nil
	if !ok {
		return latestDoc{sourceDown: down}
	}
	if p, ok := e.parsed[app]; ok && p.revision == en.Revision {
		return latestDoc{parsedDoc: p, present: true, sourceDown: down, data: en.Data, version: en.Version}
	}
	rel, err := spec.Parse(en.Data)
	if err == nil && rel.App != app {
		err = &spec.ValidationError{Errors: []spec.FieldError{{Path: "app", Msg: fmt.Sprintf("%q does not match the key it is stored under (%q)", rel.App, app)}}}
	}
	p := parsedDoc{revision: en.Revision, rel: rel, err: err}
	e.parsed[app] = p
	return latestDoc{parsedDoc: p, present: true, sourceDown: down, data: en.Data, version: en.Version}
}

type live struct {
	instances []adapters.Instance
	split     traffic.Split
	lastError string
	// applyError is why the last pass's Apply or SetWeights failed ("":
	// it worked); the next pass's planner sees it (Observed.ApplyError).
	applyError string
	// applied is the desired state the last pass applied without error
	// (nil: none); observedAt when that pass observed.
	applied    traffic.Replicas
	observedAt time.Time
	// rev is the revision of the app's record this replica last loaded
	// or saved (loadRecord).
	rev int64
	// specRev is the document revision whose spec this process last put
	// into the record (it is not encoded again for the same revision).
	specRev int64
}

// New builds an Engine.
func New(cfg Config) *Engine {
	cfg.Clock = clock.Or(cfg.Clock)
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	cfg.Metrics = cfg.Metrics.For(cfg.Env)
	if cfg.IdleResync <= 0 {
		cfg.IdleResync = DefaultIdleResync
	}
	cfg.IdleResync = max(cfg.IdleResync, cfg.Resync)
	return &Engine{
		cfg:        cfg,
		log:        cfg.Logger,
		parsed:     map[string]parsedDoc{},
		received:   map[string]time.Time{},
		seen:       map[string]seen{},
		synced:     make(chan struct{}),
		outageEnd:  map[string]time.Time{},
		healthHold: map[string]healthHold{},
		live:       map[string]*live{},
		waiters:    map[string]chan CommandResult{},
		broker:     NewBroker(),
		index:      newIndex(),
		takeovers:  newTakeovers(),
	}
}

// DefaultWorkers is Config.Workers' default. A pass mostly waits (an etcd
// write with its fsync, a deploy system's answer), so more passes at once
// than cores keep both busy; but passes beyond that only queue for the
// CPU, ahead of the API and of the next edit. Measured on 2 cores with a
// storm of 2,000 rollouts among 20,000 apps (docs/benchmarks.md): 4
// workers finish it in 19.9 s, 8 in 15.2 s, 16 in 16.8 s; edit → first
// action p99 25.6 / 40.8 / 65–84 ms, GET /apps/{app} p99 13.9 / 11.7 /
// 29–32 ms.
const DefaultWorkers = 8

// DefaultIdleResync is Config.IdleResync's default.
const DefaultIdleResync = 5 * time.Minute

// replicaID names this replica in records ("" for a lone graylane).
func (e *Engine) replicaID() string {
	if e.cfg.Shard != nil {
		return e.cfg.Shard.ID()
	}
	if e.cfg.Elect != nil {
		return e.cfg.ReplicaID
	}
	return ""
}

// Broker returns the engine's status broadcaster.
func (e *Engine) Broker() *Broker { return e.broker }

// Trigger asks for a pass over app at once, ahead of timed passes (wired
// to adapters.Notifier, the observe callback, commands). It does nothing
// while this engine does not lead.
func (e *Engine) Trigger(app string) {
	e.qmu.Lock()
	q := e.queue
	e.qmu.Unlock()
	if q != nil {
		q.Add(app)
	}
}

// TriggerAll asks for a pass over every app the engine knows (after its
// environment was unfrozen, for instance).
func (e *Engine) TriggerAll() {
	e.mu.Lock()
	var apps []string
	for _, en := range e.docs.Entries() {
		apps = append(apps, en.App)
	}
	e.mu.Unlock()
	for _, a := range apps {
		e.Trigger(a)
	}
}

// Env is the engine's environment ("" without environments).
func (e *Engine) Env() string { return e.cfg.Env }

// Leader reports whether this engine is reconciling (always true without
// Config.Elect once Run has started).
func (e *Engine) Leader() bool {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	return e.leader
}

// Synced is closed once the first full listing of the source was read.
func (e *Engine) Synced() <-chan struct{} { return e.synced }

// SourceError returns the source's current problem, nil when it is fine.
func (e *Engine) SourceError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sourceErr
}

// Run watches the source and reconciles apps until ctx ends. With
// Config.Elect it reconciles only during its terms as leader.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		e.watch(ctx)
	}()
	go func() {
		defer wg.Done()
		e.followNudges(ctx) // sharding.go
	}()
	go func() {
		defer wg.Done()
		e.feedIndex(ctx) // list.go
	}()
	defer wg.Wait()
	select {
	case <-ctx.Done():
		return nil
	case <-e.synced:
	}
	if e.cfg.Shard != nil {
		if _, ok := e.cfg.Store.(FencedStore); !ok {
			return errors.New("shard mode needs a store that fences its writes (etcdstore)")
		}
		for ctx.Err() == nil {
			e.shardTerm(ctx) // sharding.go
		}
		return nil
	}
	for ctx.Err() == nil {
		lctx := ctx
		if e.cfg.Elect != nil {
			var err error
			if lctx, err = e.cfg.Elect(ctx); err != nil {
				if ctx.Err() == nil {
					e.log.Error("leader election", "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
				continue
			}
			e.log.Info("leading: reconciling releases")
		}
		e.lead(lctx)
		if e.cfg.Elect == nil {
			break
		}
		if ctx.Err() == nil {
			e.log.Warn("lost leadership: stopped reconciling")
		}
	}
	return nil
}

// lead reconciles every app until ctx ends (one leadership term).
func (e *Engine) lead(ctx context.Context) {
	q := newQueue(time.Now)
	e.qmu.Lock()
	e.queue, e.leader = q, true
	e.qmu.Unlock()
	e.cfg.Metrics.setLeader(true)
	defer func() {
		e.qmu.Lock()
		e.queue, e.leader = nil, false
		e.qmu.Unlock()
		e.cfg.Metrics.setLeader(false)
	}()
	// every app once, through the timed lane: an edit arriving meanwhile
	// goes ahead of this start-up sweep
	mine := func(app string) bool { return e.cfg.Shard == nil || e.cfg.Shard.Mine(app) }
	if apps, err := e.cfg.Store.Apps(ctx); err == nil {
		for _, a := range apps {
			if mine(a) {
				q.Schedule(a, time.Nanosecond)
			}
		}
	} else {
		e.log.Error("list persisted apps", "err", err)
	}
	e.mu.Lock()
	for _, en := range e.docs.Entries() {
		if mine(en.App) {
			q.Schedule(en.App, time.Nanosecond)
		}
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for i := 0; i < e.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e.processNext(ctx, q) {
			}
		}()
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}

func (e *Engine) watch(ctx context.Context) {
	var rev int64
	for ctx.Err() == nil {
		for resp := range e.cfg.Source.Watch(ctx, rev) {
			now := e.cfg.Clock.Now()
			e.mu.Lock()
			if resp.Err != nil && len(resp.Events) == 0 && !resp.Reset {
				if e.sourceErr == nil {
					e.log.Warn("config source unavailable; running rollouts hold until it is back", "source", e.cfg.Source.Name(), "err", resp.Err)
				}
				e.sourceErr = resp.Err
				e.mu.Unlock()
				e.cfg.Metrics.sourceUp(false)
				continue
			}
			// A response with events is data even if it also reports a
			// problem: apply it, and keep the problem.
			recovered := e.sourceErr != nil && resp.Err == nil
			e.sourceErr = resp.Err
			changes := e.docs.Apply(resp)
			if resp.Revision > 0 {
				rev = resp.Revision
			}
			for _, ch := range changes {
				e.received[ch.Entry.App] = now
				e.seen[ch.Entry.App] = seen{revision: ch.Entry.Revision, at: now}
				delete(e.parsed, ch.Entry.App)
				e.index.doc(ch.Entry.App, e.cfg.Source.Name(), ch.Type != configsync.Delete)
			}
			first := resp.Reset && !e.isSynced
			if first {
				e.isSynced = true
				close(e.synced)
			}
			var all []string
			if recovered {
				for _, en := range e.docs.Entries() {
					e.outageEnd[en.App] = now
					all = append(all, en.App)
				}
				e.log.Info("config source available again", "source", e.cfg.Source.Name())
			}
			e.mu.Unlock()
			e.cfg.Metrics.sourceUp(resp.Err == nil)
			var foreign map[string]bool
			if e.cfg.Shard != nil {
				put := make([]string, 0, len(changes))
				for _, ch := range changes {
					if ch.Type != configsync.Delete {
						put = append(put, ch.Entry.App)
					}
				}
				foreign = e.thinForeign(put) // sharding.go
			}
			for _, ch := range changes {
				if !foreign[ch.Entry.App] {
					e.Trigger(ch.Entry.App)
				}
			}
			for _, a := range all {
				e.Trigger(a)
			}
		}
	}
}

func (e *Engine) processNext(ctx context.Context, q *queue) bool {
	app, event, ok := q.Get()
	if !ok {
		return false
	}
	e.process(ctx, q, app, event)
	return true
}

// process runs one pass over app, which q handed out, and tells q when to
// look again.
func (e *Engine) process(ctx context.Context, q *queue, app string, event bool) {
	defer q.Done(app)
	start := time.Now()
	r, err := e.sync(ctx, app, event, q.IdleStreak(app) > 0)
	e.cfg.Metrics.observeSync(time.Since(start), err)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("reconcile failed", "app", app, "err", err)
		}
		q.Retry(app)
		return
	}
	switch {
	case r.next < 0:
		q.Forget(app)
	case r.quiet:
		q.Idle(app, e.cfg.Resync, e.cfg.IdleResync)
	case r.next > 0:
		q.Busy(app, min(r.next, e.cfg.Resync))
	default:
		q.Busy(app, e.cfg.Resync)
	}
}

func (e *Engine) emit(app string, ev rollout.Event) {
	lvl := slog.LevelInfo
	if ev.Type == rollout.Warning {
		lvl = slog.LevelWarn
	}
	e.log.Log(context.Background(), lvl, ev.Message, "app", app, "reason", ev.Reason)
	e.broker.Publish(app, Message{Kind: "event", Event: &EventView{Event: ev, App: app, Env: e.cfg.Env, Time: e.cfg.Clock.Now()}})
}

func (e *Engine) setLive(app string, f func(*live)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.live[app]
	if l == nil {
		l = &live{}
		e.live[app] = l
	}
	f(l)
}

// firstAction records, for the latency metric, the first backend action
// after a new document arrived.
func (e *Engine) firstAction(app, version string, want traffic.Replicas) {
	e.mu.Lock()
	at, ok := e.received[app]
	if ok {
		delete(e.received, app)
	}
	e.mu.Unlock()
	if ok && want[version] > 0 {
		e.cfg.Metrics.observeSourceToAction(e.cfg.Clock.Now().Sub(at))
	}
}
