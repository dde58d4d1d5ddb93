package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
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

// Clock tells the time. Tests inject a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config configures an Engine.
type Config struct {
	Source   configsync.Source
	Store    Store
	Resolver Resolver
	// Clock defaults to the real clock.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Workers is the number of apps reconciled at once (default 4).
	Workers int
	// Resync is the longest time between two passes of an app (default 10s).
	Resync time.Duration
	// Analysis runs strategy.analysis checks; nil disables analysis (checks
	// never report, so analysis steps wait for ever).
	Analysis *analysis.Runner
	// Config keeps releases' bound config in step with them (config.go);
	// nil ignores config sections.
	Config ConfigReleaser
	// Elect, if set, makes this engine one of several: it watches and
	// serves views all the time but reconciles only while it leads.
	Elect Elect
}

// Elect blocks until this graylane leads (or ctx ends) and returns a
// context that ends when leadership is lost.
type Elect func(ctx context.Context) (context.Context, error)

// Engine is graylane's control loop.
type Engine struct {
	cfg Config
	log *slog.Logger

	qmu    sync.Mutex
	queue  workqueue.TypedRateLimitingInterface[string] // nil while not leading
	leader bool

	mu        sync.Mutex
	docs      configsync.State
	parsed    map[string]parsedDoc
	received  map[string]time.Time // when an app's newest document arrived
	synced    chan struct{}
	isSynced  bool
	sourceErr error
	outageEnd map[string]time.Time
	live      map[string]*live
	waiters   map[string]chan CommandResult

	broker *Broker
}

type parsedDoc struct {
	revision int64
	rel      *spec.Release
	err      error
}

type live struct {
	instances []adapters.Instance
	split     traffic.Split
	lastError string
	view      *AppView
}

// New builds an Engine.
func New(cfg Config) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	return &Engine{
		cfg:       cfg,
		log:       cfg.Logger,
		parsed:    map[string]parsedDoc{},
		received:  map[string]time.Time{},
		synced:    make(chan struct{}),
		outageEnd: map[string]time.Time{},
		live:      map[string]*live{},
		waiters:   map[string]chan CommandResult{},
		broker:    NewBroker(),
	}
}

// Broker returns the engine's status broadcaster.
func (e *Engine) Broker() *Broker { return e.broker }

// Trigger asks for a pass over app soon (wired to adapters.Notifier). It
// does nothing while this engine does not lead.
func (e *Engine) Trigger(app string) {
	e.qmu.Lock()
	q := e.queue
	e.qmu.Unlock()
	if q != nil {
		q.Add(app)
	}
}

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
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.watch(ctx)
	}()
	defer wg.Wait()
	select {
	case <-ctx.Done():
		return nil
	case <-e.synced:
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
	rl := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 10*time.Second),
	)
	q := workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[string]{Name: "graylane"})
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
	if apps, err := e.cfg.Store.Apps(ctx); err == nil {
		for _, a := range apps {
			q.Add(a)
		}
	} else {
		e.log.Error("list persisted apps", "err", err)
	}
	e.mu.Lock()
	for _, en := range e.docs.Entries() {
		q.Add(en.App)
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
				delete(e.parsed, ch.Entry.App)
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
			for _, ch := range changes {
				e.Trigger(ch.Entry.App)
			}
			for _, a := range all {
				e.Trigger(a)
			}
		}
	}
}

func (e *Engine) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) bool {
	app, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(app)
	start := time.Now()
	next, err := e.Sync(ctx, app)
	e.cfg.Metrics.observeSync(time.Since(start), err)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("reconcile failed", "app", app, "err", err)
		}
		q.AddRateLimited(app)
		return true
	}
	q.Forget(app)
	if next > 0 {
		q.AddAfter(app, min(next, e.cfg.Resync))
	} else if next == 0 {
		q.AddAfter(app, e.cfg.Resync)
	}
	return true
}

// parse returns the app's newest document, parsed, and whether there is one.
func (e *Engine) doc(app string) (parsedDoc, bool, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en, ok := e.docs.Get(app)
	if !ok {
		return parsedDoc{}, false, e.sourceErr != nil
	}
	if p, ok := e.parsed[app]; ok && p.revision == en.Revision {
		return p, true, e.sourceErr != nil
	}
	rel, err := spec.Parse(en.Data)
	if err == nil && rel.App != app {
		err = &spec.ValidationError{Errors: []spec.FieldError{{Path: "app", Msg: fmt.Sprintf("%q does not match the key it is stored under (%q)", rel.App, app)}}}
	}
	p := parsedDoc{revision: en.Revision, rel: rel, err: err}
	e.parsed[app] = p
	return p, true, e.sourceErr != nil
}

// Sync runs one pass over app: load, observe, plan, apply, persist. It
// returns when to look again (-1: never, 0: at the next resync).
func (e *Engine) Sync(ctx context.Context, app string) (time.Duration, error) {
	now := e.cfg.Clock.Now()
	rec, rev, err := e.cfg.Store.Load(ctx, app)
	if err != nil {
		return 0, fmt.Errorf("load state of %s: %w", app, err)
	}
	orig := rec
	origJSON, _ := json.Marshal(orig)
	log := e.log.With("app", app)

	pd, haveDoc, sourceDown := e.doc(app)
	pd = e.checkConfig(ctx, pd) // config.go
	var rel *spec.Release
	if haveDoc {
		if pd.err == nil {
			rel = pd.rel
			b, _ := json.Marshal(rel)
			rec.Spec, rec.SpecRevision, rec.SpecError, rec.Deleting = b, pd.revision, nil, false
		} else {
			fe := &FieldError{Error: pd.err.Error(), Field: spec.FieldOf(pd.err), Revision: pd.revision}
			if rec.SpecError == nil || rec.SpecError.Error != fe.Error || rec.SpecError.Revision != fe.Revision {
				log.Error("rejected release spec; last good spec stays in force", "revision", pd.revision, "field", fe.Field, "err", pd.err)
				e.emit(app, rollout.Event{Type: rollout.Warning, Reason: "InvalidSpec", Message: fe.Error})
			}
			rec.SpecError = fe
		}
	} else if len(rec.Spec) > 0 {
		if !rec.Deleting {
			log.Info("release spec removed from source; scaling the app to zero")
			e.emit(app, rollout.Event{Type: rollout.Normal, Reason: "Deleting", Message: "spec removed from " + e.cfg.Source.Name() + "; scaling to zero"})
		}
		rec.Deleting = true
	} else if rev == 0 {
		return -1, nil // unknown app
	}
	if rel == nil && len(rec.Spec) > 0 {
		var last spec.Release
		if err := json.Unmarshal(rec.Spec, &last); err != nil {
			return 0, fmt.Errorf("decode last good spec of %s: %w", app, err)
		}
		if err := last.Validate(); err != nil {
			return 0, fmt.Errorf("last good spec of %s no longer validates: %w", app, err)
		}
		rel = &last
	}
	if rel == nil {
		// only an invalid document so far: record the error, apply nothing
		return 0, e.save(ctx, app, rec, rev, origJSON, nil)
	}

	backend, err := e.cfg.Resolver.Backend(rel)
	if err != nil {
		return 0, e.fail(ctx, app, rec, rev, origJSON, fmt.Errorf("backend %s for %s: %w", rel.Backend.Type, app, err))
	}
	router, err := e.cfg.Resolver.Router(rel)
	if err != nil {
		return 0, e.fail(ctx, app, rec, rev, origJSON, fmt.Errorf("router for %s: %w", app, err))
	}

	if rec.Deleting {
		return e.teardown(ctx, app, rel, backend, router, rec, rev, origJSON)
	}
	specRel := rel
	rel, identity, err := e.configIdentity(ctx, rel) // config.go
	if err != nil {
		return 0, e.fail(ctx, app, rec, rev, origJSON, fmt.Errorf("config of %s: %w", app, err))
	}

	var cmd PendingCommand
	if len(rec.Commands) > 0 {
		cmd = rec.Commands[0]
	}
	insts, err := backend.Observe(ctx, app)
	if err != nil {
		return 0, e.fail(ctx, app, rec, rev, origJSON, fmt.Errorf("observe %s: %w", app, err))
	}
	if sourceDown && cmd.ID == "" {
		// Desired state may have changed in the centre: do not advance or
		// roll back on stale data; keep serving (and showing) what runs.
		e.setLive(app, func(l *live) {
			l.instances = insts
			l.lastError = "config source unavailable: holding the release until it is back"
		})
		e.publish(ctx, app)
		return time.Second, nil
	}
	cfgp, insts, err := e.configReconcile(ctx, app, specRel, identity, rec.Status, insts) // config.go
	if err != nil {
		return 0, e.fail(ctx, app, rec, rev, origJSON, fmt.Errorf("config of %s: %w", app, err))
	}
	obs := rollout.Observed{Versions: map[string]rollout.Count{}, Router: router != nil}
	for _, in := range insts {
		c := obs.Versions[in.Version]
		c.Total++
		if in.Ready {
			c.Ready++
		}
		obs.Versions[in.Version] = c
		if why := in.Meta[adapters.MetaStalled]; why != "" {
			if obs.Stalled == nil {
				obs.Stalled = map[string]string{}
			}
			obs.Stalled[in.Version] = why
		}
	}
	if router != nil {
		if obs.Split, err = router.Weights(ctx, app); err != nil {
			return 0, e.fail(ctx, app, rec, rev, origJSON, fmt.Errorf("read traffic split of %s: %w", app, err))
		}
	}

	st := rec.Status
	e.mu.Lock()
	if end, ok := e.outageEnd[app]; ok {
		// a config-centre outage does not count against the progress deadline
		if st.LastProgressAt.Before(end) && st.CanaryVersion != "" {
			st.LastProgressAt = end
		}
		delete(e.outageEnd, app)
	}
	e.mu.Unlock()

	var checks map[string]rollout.CheckResult
	if e.cfg.Analysis != nil {
		checks = e.cfg.Analysis.Results(app)
	}
	d := rollout.Plan(rollout.Input{Spec: rel, Status: st, Observed: obs, Command: cmd.Command, Now: now, Checks: checks, Config: cfgp.gate})
	d.Events = append(cfgp.events, d.Events...)
	if e.cfg.Analysis != nil {
		if ds := d.Status; ds.CanaryVersion != "" && !ds.Rollback && rel.Strategy.Analysis != nil {
			e.cfg.Analysis.Ensure(rel, ds.StableVersion, ds.CanaryVersion)
		} else {
			e.cfg.Analysis.Stop(app)
		}
	}

	var applyErr error
	step := adapters.Step{Index: -1, Reason: d.Status.Message}
	if d.Status.CanaryVersion != "" && rel.Strategy.Type == spec.Canary {
		step.Index = d.Status.Step
	}
	if err := backend.Apply(ctx, rel, d.Replicas, step); err != nil {
		applyErr = fmt.Errorf("apply replicas %v for %s: %w", d.Replicas, app, err)
	} else if d.Split != nil && router != nil && !d.Split.Equal(obs.Split) {
		if err := router.SetWeights(ctx, rel, *d.Split); err != nil {
			applyErr = fmt.Errorf("set traffic split %v for %s: %w", d.Split.Weights, app, err)
		}
	}
	e.firstAction(app, rel.Version, d.Replicas)

	rec.Status = d.Status
	if cmd.ID != "" {
		rec.Commands = rec.Commands[1:]
		rec.LastCommand = &CommandResult{ID: cmd.ID, Command: cmd.Command, Error: d.CommandErr}
	}
	e.setLive(app, func(l *live) {
		l.instances = insts
		l.split = obs.Split
		if d.Split != nil && applyErr == nil {
			l.split = *d.Split
		}
		l.lastError = ""
		if applyErr != nil {
			l.lastError = applyErr.Error()
		}
	})
	if err := e.save(ctx, app, rec, rev, origJSON, d.Events); err != nil {
		return 0, err
	}
	if cmd.ID != "" {
		e.resolveCommand(*rec.LastCommand)
	}
	e.cfg.Metrics.observeStatus(app, orig.Status, d.Status, now)
	if applyErr != nil {
		log.Error("apply decision", "err", applyErr)
		e.emit(app, rollout.Event{Type: rollout.Warning, Reason: "ApplyFailed", Message: applyErr.Error()})
		return 0, applyErr
	}
	if len(rec.Commands) > 0 {
		return time.Millisecond, nil
	}
	return sooner(d.RequeueAfter, cfgp.requeue), nil
}

// teardown scales a deleted app to zero, then forgets it.
func (e *Engine) teardown(ctx context.Context, app string, rel *spec.Release, backend adapters.Backend, router adapters.TrafficRouter, rec Record, rev int64, origJSON []byte) (time.Duration, error) {
	insts, err := backend.Observe(ctx, app)
	if err != nil {
		return 0, fmt.Errorf("observe %s for deletion: %w", app, err)
	}
	if len(insts) > 0 {
		if err := backend.Apply(ctx, rel, traffic.Replicas{}, adapters.Step{Index: -1, Reason: "deleting: " + app + " was removed from " + e.cfg.Source.Name()}); err != nil {
			return 0, fmt.Errorf("scale %s to zero: %w", app, err)
		}
		rec.Status.Phase, rec.Status.Message = rollout.Progressing, fmt.Sprintf("deleting: %d instances left", len(insts))
		e.setLive(app, func(l *live) { l.instances = insts })
		if err := e.save(ctx, app, rec, rev, origJSON, nil); err != nil {
			return 0, err
		}
		return time.Second, nil
	}
	for _, a := range []any{backend, router} {
		if f, ok := a.(adapters.Forgetter); ok {
			if err := f.Forget(ctx, app); err != nil {
				return 0, fmt.Errorf("forget %s: %w", app, err)
			}
		}
	}
	if rev != 0 {
		if err := e.cfg.Store.Delete(ctx, app, rev); err != nil {
			return 0, fmt.Errorf("delete state of %s: %w", app, err)
		}
	}
	e.mu.Lock()
	delete(e.live, app)
	delete(e.parsed, app)
	e.mu.Unlock()
	if e.cfg.Analysis != nil {
		e.cfg.Analysis.Stop(app)
	}
	e.emit(app, rollout.Event{Type: rollout.Normal, Reason: "Deleted", Message: "app removed"})
	e.cfg.Metrics.forget(app)
	e.log.Info("app deleted", "app", app)
	return -1, nil
}

func (e *Engine) fail(ctx context.Context, app string, rec Record, rev int64, origJSON []byte, err error) error {
	e.setLive(app, func(l *live) { l.lastError = err.Error() })
	e.emit(app, rollout.Event{Type: rollout.Warning, Reason: "ReconcileFailed", Message: err.Error()})
	if serr := e.save(ctx, app, rec, rev, origJSON, nil); serr != nil {
		return errors.Join(err, serr)
	}
	if errors.Is(err, adapters.ErrUnsupported) {
		return nil // retrying will not help; the spec must change
	}
	return err
}

// save persists rec when it changed, then publishes the app's view.
func (e *Engine) save(ctx context.Context, app string, rec Record, rev int64, origJSON []byte, events []rollout.Event) error {
	rec.UpdatedAt = time.Time{}
	var cmp Record
	_ = json.Unmarshal(origJSON, &cmp)
	cmp.UpdatedAt = time.Time{}
	a, _ := json.Marshal(rec)
	b, _ := json.Marshal(cmp)
	if !bytes.Equal(a, b) {
		rec.UpdatedAt = e.cfg.Clock.Now()
		if _, err := e.cfg.Store.Save(ctx, app, rec, rev); err != nil {
			return fmt.Errorf("persist state of %s: %w", app, err)
		}
	}
	for _, ev := range events {
		e.emit(app, ev)
	}
	e.publish(ctx, app)
	return nil
}

func (e *Engine) emit(app string, ev rollout.Event) {
	lvl := slog.LevelInfo
	if ev.Type == rollout.Warning {
		lvl = slog.LevelWarn
	}
	e.log.Log(context.Background(), lvl, ev.Message, "app", app, "reason", ev.Reason)
	e.broker.Publish(app, Message{Kind: "event", Event: &EventView{Event: ev, App: app, Time: e.cfg.Clock.Now()}})
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

func (e *Engine) publish(ctx context.Context, app string) {
	v, err := e.App(ctx, app)
	if err != nil {
		return
	}
	e.broker.Publish(app, Message{Kind: "status", App: &v})
}

// Command queues an operator command for app and waits (until ctx ends)
// for the pass that processes it. The command is persisted first, so it
// survives a restart of graylane.
func (e *Engine) Command(ctx context.Context, app string, cmd rollout.Command) (CommandResult, error) {
	if _, ok := rollout.ParseCommand(string(cmd)); !ok {
		return CommandResult{}, fmt.Errorf("unknown command %q", cmd)
	}
	id := newID()
	ch := make(chan CommandResult, 1)
	e.mu.Lock()
	e.waiters[id] = ch
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.waiters, id)
		e.mu.Unlock()
	}()
	for attempt := 0; ; attempt++ {
		rec, rev, err := e.cfg.Store.Load(ctx, app)
		if err != nil {
			return CommandResult{}, err
		}
		if rev == 0 || len(rec.Spec) == 0 {
			return CommandResult{}, fmt.Errorf("app %s: %w", app, ErrNotFound)
		}
		rec.Commands = append(rec.Commands, PendingCommand{ID: id, Command: cmd, At: e.cfg.Clock.Now()})
		rec.UpdatedAt = e.cfg.Clock.Now()
		if _, err := e.cfg.Store.Save(ctx, app, rec, rev); err != nil {
			if errors.Is(err, ErrConflict) && attempt < 20 {
				continue
			}
			return CommandResult{}, fmt.Errorf("queue %s for %s: %w", cmd, app, err)
		}
		break
	}
	e.Trigger(app)
	// The leader may be another graylane: watch the record as well as the
	// local waiter.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-ch:
			return r, nil
		case <-tick.C:
			if rec, _, err := e.cfg.Store.Load(ctx, app); err == nil && rec.LastCommand != nil && rec.LastCommand.ID == id {
				return *rec.LastCommand, nil
			}
		case <-ctx.Done():
			return CommandResult{ID: id, Command: cmd}, fmt.Errorf("command %s for %s queued but not yet processed: %w", cmd, app, ctx.Err())
		}
	}
}

func (e *Engine) resolveCommand(r CommandResult) {
	e.mu.Lock()
	ch := e.waiters[r.ID]
	e.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
	if r.Error == "" {
		e.log.Info("command applied", "command", r.Command, "id", r.ID)
	}
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// AppView is what the API shows for an app.
type AppView struct {
	App  string        `json:"app"`
	Spec *spec.Release `json:"spec,omitempty"`
	// DocumentVersion is the version of the app's document in the centre
	// as last read (etcd: mod revision; Nacos, Apollo: MD5), for a
	// compare-and-swap write (If-Match). Empty when the app has none.
	DocumentVersion string     `json:"documentVersion,omitempty"`
	Status          StatusView `json:"status"`
}

// StatusView is an app's status with its live instances.
type StatusView struct {
	rollout.Status
	// TotalSteps is the number of canary steps.
	TotalSteps int `json:"totalSteps"`
	// Instances are the backend's instances as last observed.
	Instances []adapters.Instance `json:"instances"`
	// ObservedRevision is the source revision of the spec in force.
	ObservedRevision int64 `json:"observedRevision"`
	// SpecError is the error of a newer, rejected document.
	SpecError *FieldError `json:"specError,omitempty"`
	// LastError is the last reconcile error ("" when the last pass worked).
	LastError string `json:"lastError,omitempty"`
	// LastCommand is the last command's outcome.
	LastCommand *CommandResult `json:"lastCommand,omitempty"`
	// Analysis holds the latest runs of each analysis check against the
	// version being rolled out.
	Analysis map[string]rollout.CheckResult `json:"analysis,omitempty"`
	// Config is the config-in-step status: what each target holds, the
	// gate, drift (config.go).
	Config *configrelease.View `json:"config,omitempty"`
	// Source names the config centre and whether it is reachable.
	Source SourceView `json:"source"`
	// UpdatedAt is when the status last changed.
	UpdatedAt time.Time `json:"updatedAt"`
}

// SourceView describes the config centre.
type SourceView struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// App returns app's view, or an error wrapping ErrNotFound.
func (e *Engine) App(ctx context.Context, app string) (AppView, error) {
	rec, rev, err := e.cfg.Store.Load(ctx, app)
	if err != nil {
		return AppView{}, err
	}
	e.mu.Lock()
	doc, haveDoc := e.docs.Get(app)
	pd := e.parsed[app]
	var insts []adapters.Instance
	lastErr := ""
	if l := e.live[app]; l != nil {
		insts = append(insts, l.instances...)
		lastErr = l.lastError
	}
	srcErr := e.sourceErr
	e.mu.Unlock()
	if rev == 0 && !haveDoc {
		return AppView{}, fmt.Errorf("app %s: %w", app, ErrNotFound)
	}
	v := AppView{App: app}
	if haveDoc {
		v.DocumentVersion = doc.Version
	}
	if len(rec.Spec) > 0 {
		var rel spec.Release
		if json.Unmarshal(rec.Spec, &rel) == nil {
			v.Spec = &rel
			v.Status.TotalSteps = len(rel.Strategy.Steps)
		}
	}
	v.Status.Status = rec.Status
	v.Status.ObservedRevision = rec.SpecRevision
	v.Status.SpecError = rec.SpecError
	if v.Status.SpecError == nil && pd.err != nil {
		v.Status.SpecError = &FieldError{Error: pd.err.Error(), Field: spec.FieldOf(pd.err), Revision: pd.revision}
	}
	v.Status.LastCommand = rec.LastCommand
	v.Status.UpdatedAt = rec.UpdatedAt
	v.Status.Instances = append([]adapters.Instance{}, insts...)
	v.Status.LastError = lastErr
	sort.Slice(v.Status.Instances, func(i, j int) bool { return v.Status.Instances[i].ID < v.Status.Instances[j].ID })
	if e.cfg.Analysis != nil && rec.Status.CanaryVersion != "" {
		if res := e.cfg.Analysis.Results(app); len(res) > 0 {
			for k, r := range res {
				if len(r.Runs) > 5 {
					r.Runs = r.Runs[len(r.Runs)-5:]
				}
				res[k] = r
			}
			v.Status.Analysis = res
		}
	}
	v.Status.Source = SourceView{Name: e.cfg.Source.Name(), Ready: srcErr == nil}
	v.Status.Config = e.configView(app)
	if srcErr != nil {
		v.Status.Source.Error = srcErr.Error()
	}
	if v.Status.Phase == "" && v.Spec == nil && v.Status.SpecError != nil {
		v.Status.Phase = rollout.Degraded
		v.Status.Message = "no valid spec yet: " + v.Status.SpecError.Error
	}
	return v, nil
}

// Apps returns every app's view, sorted by name.
func (e *Engine) Apps(ctx context.Context) ([]AppView, error) {
	names := map[string]bool{}
	stored, err := e.cfg.Store.Apps(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range stored {
		names[a] = true
	}
	e.mu.Lock()
	for _, en := range e.docs.Entries() {
		names[en.App] = true
	}
	e.mu.Unlock()
	var out []AppView
	for a := range names {
		v, err := e.App(ctx, a)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out, nil
}
