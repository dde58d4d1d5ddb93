package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Sync runs one pass over app: load, observe, plan, apply, persist. It
// returns when to look again (-1: never, 0: at the next resync).
func (e *Engine) Sync(ctx context.Context, app string) (time.Duration, error) {
	r, err := e.sync(ctx, app, true, false)
	return r.next, err
}

// passResult is what a pass tells the queue.
type passResult struct {
	// next is when to look again (-1: never, 0: at the next resync).
	next time.Duration
	// quiet: the pass changed nothing and waits for nothing, so the next
	// one may back off (Config.IdleResync).
	quiet bool
}

// sync runs one pass. event says the pass was asked for by an event (not
// a timer); idle that the app's last pass was quiet.
func (e *Engine) sync(ctx context.Context, app string, event, idle bool) (passResult, error) {
	p := &pass{e: e, app: app, now: e.cfg.Clock.Now(), log: e.log.With("app", app), event: event, idle: idle}
	if e.cfg.Shard != nil {
		f, ok, err := e.claim(ctx, app) // sharding.go
		if !ok {
			return passResult{next: -1}, err
		}
		p.fence = f
	}
	next, err := p.run(ctx)
	return passResult{next: next, quiet: err == nil && next >= 0 && p.quiet}, err
}

// pass is one reconcile pass over one app. It holds what the pass has
// learnt so far — the persisted record as loaded and as it is being
// changed, the release in force, the adapters, what they observe, the
// planner's decision — so that its steps need no long argument lists:
//
//	load     the record, the newest document, the release in force
//	observe  the backend's instances, the config layer, the router's split
//	plan     rollout.Plan (pure) and the analysis runner
//	apply    Backend.Apply, then TrafficRouter.SetWeights
//	persist  save the record if it changed (compare-and-swap), emit the
//	         events, publish the view built from the record in hand
type pass struct {
	e   *Engine
	app string
	now time.Time
	log *slog.Logger

	// rec is the app's record, changed by the pass; stored is the record
	// as persisted (loaded, or last saved by this pass), rev its revision
	// (0: none yet) and loaded its JSON without UpdatedAt, to save only when something
	// changed. Views are built from stored: no Store.Load per publish.
	rec    Record
	stored Record
	rev    int64
	loaded []byte
	before rollout.Status

	doc latestDoc
	// rel is the release in force as the planner and the backend see it
	// (its version is the release identity); spec is the same release as
	// written (its config section is the config layer's input).
	rel, spec *spec.Release
	// identity is the release identity of rel (configrelease); prepared
	// holds Prepare's answer for the newest document, so Prepare runs once
	// per pass.
	identity string
	prepared *prepared

	// backend and router are the adapters the release asks for (their
	// optional capabilities are checked on them); call and route are the
	// same adapters as the pass calls them: in shard mode each call first
	// checks the lease and carries the fence (sharding.go).
	backend adapters.Backend
	router  adapters.TrafficRouter
	call    adapters.Backend
	route   adapters.TrafficRouter
	// fence is this replica's hold on the app in shard mode (zero
	// otherwise): every write of the record is conditional on it.
	fence  Fence
	cmd    PendingCommand
	insts  []adapters.Instance
	obs    rollout.Observed
	config configPass
	checks map[string]rollout.CheckResult
	hooks  *rollout.HookGate
	plan   rollout.Decision

	// event: a pass asked for by an event, not a timer; idle: the app's
	// last pass was quiet. An idle app's timed pass on a backend that
	// notifies every change uses what it last observed (cached) instead
	// of asking it (observe.go).
	event, idle, cached bool
	// busy is set when the pass saved, emitted an event or failed; quiet
	// when it ends without that and without a timer (persist).
	busy, quiet bool
	// viewSpec: stored.Spec is p.spec as JSON, so the published view can
	// use p.spec instead of decoding the record's copy.
	viewSpec bool
	// text is records.SpecText(textOf) (specText, records.go).
	textOf *spec.Release
	text   string
}

// prepared is configrelease's Prepare answer for one release.
type prepared struct {
	rel      *spec.Release
	identity string
	err      error
}

func (p *pass) run(ctx context.Context) (time.Duration, error) {
	next, done, err := p.loadState(ctx)
	if done {
		return next, err
	}
	if err := p.lookupCause(ctx); err != nil { // records.go
		return 0, p.fail(ctx, err)
	}
	if next, done, err := p.resolve(ctx); done {
		return next, err
	}
	if p.rec.Deleting {
		return p.teardown(ctx)
	}
	if err := p.bindIdentity(ctx); err != nil {
		return 0, p.fail(ctx, fmt.Errorf("config of %s: %w", p.app, err))
	}
	if next, done, err := p.observe(ctx); done {
		return next, err
	}
	if err := p.gateHooks(ctx); err != nil { // hooks.go
		return 0, p.fail(ctx, err)
	}
	p.decide()
	applyErr := p.apply(ctx)
	return p.persist(ctx, applyErr)
}

// loadState loads the app's record and its newest document and works out
// the release in force. done reports that the pass ends here.
func (p *pass) loadState(ctx context.Context) (next time.Duration, done bool, err error) {
	e, app := p.e, p.app
	rec, rev, err := e.loadRecord(ctx, app) // observe.go
	if err != nil {
		return 0, true, fmt.Errorf("load state of %s: %w", app, err)
	}
	p.rec, p.stored, p.rev, p.before = rec, rec, rev, rec.Status
	p.loaded = comparable(rec)

	if p.doc, err = e.latest(ctx, app); err != nil {
		return 0, true, fmt.Errorf("load state of %s: %w", app, err)
	}
	p.checkConfig(ctx) // config.go
	var rel *spec.Release
	switch d := p.doc; {
	case d.present && d.err == nil:
		rel = d.rel
		if len(p.rec.Spec) == 0 || p.rec.SpecRevision != d.revision || e.specRev(app) != d.revision {
			// the record does not hold this document's JSON yet (the
			// same revision's, put there by this process, is not
			// encoded again)
			p.rec.Spec, _ = json.Marshal(rel)
			e.setLive(app, func(l *live) { l.specRev = d.revision })
		}
		p.rec.SpecRevision, p.rec.SpecError, p.rec.Deleting = d.revision, nil, false
	case d.present:
		fe := &FieldError{Error: d.err.Error(), Field: spec.FieldOf(d.err), Revision: d.revision}
		if old := p.rec.SpecError; old == nil || old.Error != fe.Error || old.Revision != fe.Revision {
			p.log.Error("rejected release spec; last good spec stays in force", "revision", d.revision, "field", fe.Field, "err", d.err)
			p.busy = true
			e.emit(app, rollout.Event{Type: rollout.Warning, Reason: "InvalidSpec", Message: fe.Error})
		}
		p.rec.SpecError = fe
	case len(p.rec.Spec) > 0:
		if !p.rec.Deleting {
			p.log.Info("release spec removed from source; scaling the app to zero")
			e.emit(app, rollout.Event{Type: rollout.Normal, Reason: "Deleting", Message: "spec removed from " + e.cfg.Source.Name() + "; scaling to zero"})
		}
		p.rec.Deleting = true
	case rev == 0:
		return -1, true, nil // unknown app
	}
	if rel == nil && len(p.rec.Spec) > 0 {
		var last spec.Release
		if err := json.Unmarshal(p.rec.Spec, &last); err != nil {
			return 0, true, fmt.Errorf("decode last good spec of %s: %w", app, err)
		}
		if err := last.Validate(); err != nil {
			return 0, true, fmt.Errorf("last good spec of %s no longer validates: %w", app, err)
		}
		rel = &last
	}
	if rel == nil {
		// only an invalid document so far: record the error, apply nothing
		err := p.save(ctx, nil)
		p.quiet = !p.busy
		return 0, true, err
	}
	p.rel, p.spec = rel, rel
	p.viewSpec = bytes.Equal(p.stored.Spec, p.rec.Spec)
	return 0, false, nil
}

// resolve finds the backend and router the release asks for.
func (p *pass) resolve(ctx context.Context) (time.Duration, bool, error) {
	var err error
	if p.backend, err = p.e.cfg.Resolver.Backend(p.rel); err != nil {
		return 0, true, p.fail(ctx, fmt.Errorf("backend %s for %s: %w", p.rel.Backend.Type, p.app, err))
	}
	if p.router, err = p.e.cfg.Resolver.Router(p.rel); err != nil {
		return 0, true, p.fail(ctx, fmt.Errorf("router for %s: %w", p.app, err))
	}
	p.call, p.route = p.backend, p.router
	p.fenceAdapters()
	return 0, false, nil
}

// observe asks the backend, the config layer and the router what is true
// now, and fills p.obs for the planner.
func (p *pass) observe(ctx context.Context) (time.Duration, bool, error) {
	e, app := p.e, p.app
	if len(p.rec.Commands) > 0 {
		p.cmd = p.rec.Commands[0]
	}
	insts, cached := p.cachedObservation() // observe.go
	var err error
	if !cached {
		if insts, err = p.call.Observe(ctx, app); err != nil {
			return 0, true, p.fail(ctx, fmt.Errorf("observe %s: %w", app, err))
		}
	}
	if p.doc.sourceDown && p.cmd.ID == "" {
		// Desired state may have changed in the centre: do not advance or
		// roll back on stale data; keep serving (and showing) what runs.
		e.setLive(app, func(l *live) {
			l.instances = insts
			l.lastError = "config source unavailable: holding the release until it is back"
		})
		p.publish()
		return time.Second, true, nil
	}
	if n := p.healthPending(insts); n > 0 && p.cmd.ID == "" && !p.rec.Deleting { // healthhold.go
		// Instances adopted after a restart whose health the backend has
		// not judged yet: their readiness is unknown, not false. Planning
		// now would take the traffic of their version away (a version with
		// no ready instance gets none) and give it back a moment later.
		// Hold everything as persisted; show what runs; look again soon
		// (the backend also notifies once it has judged them). A command
		// or a deletion is not held: someone asked for it.
		e.setLive(app, func(l *live) { l.instances = insts })
		p.publish()
		e.log.Debug("holding: adopted instances' health is pending", "app", app, "pending", n)
		return 250 * time.Millisecond, true, nil
	}
	if p.config, insts, err = p.reconcileConfig(ctx, insts); err != nil { // config.go
		return 0, true, p.fail(ctx, fmt.Errorf("config of %s: %w", app, err))
	}
	p.insts = insts
	p.obs = rollout.Observed{Versions: map[string]rollout.Count{}, Router: p.router != nil}
	for _, in := range insts {
		c := p.obs.Versions[in.Version]
		c.Total++
		if in.Ready {
			c.Ready++
		}
		p.obs.Versions[in.Version] = c
		if why := in.Meta[adapters.MetaStalled]; why != "" {
			if p.obs.Stalled == nil {
				p.obs.Stalled = map[string]string{}
			}
			p.obs.Stalled[in.Version] = why
		}
	}
	if p.router != nil {
		if p.obs.Split, err = p.route.Weights(ctx, app); err != nil {
			return 0, true, p.fail(ctx, fmt.Errorf("read traffic split of %s: %w", app, err))
		}
	}
	return 0, false, nil
}

// decide runs the planner and keeps the analysis runner in step with the
// rollout it decided.
func (p *pass) decide() {
	e, app := p.e, p.app
	st := p.rec.Status
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
	e.mu.Lock()
	if l := e.live[app]; l != nil {
		p.obs.ApplyError = l.applyError
	}
	e.mu.Unlock()
	p.checks = checks
	p.plan = rollout.Plan(rollout.Input{Spec: p.rel, Status: st, Observed: p.obs, Command: p.cmd.Command, Now: p.now, Checks: checks, Config: p.config.gate,
		RollbackIntent: p.rollbackIntent(), Hooks: p.hooks, Frozen: e.frozen()})
	p.plan.Events = append(p.config.events, p.plan.Events...)
	if e.cfg.Analysis != nil {
		if ds := p.plan.Status; ds.CanaryVersion != "" && !ds.Rollback && p.rel.Strategy.Analysis != nil {
			e.cfg.Analysis.Ensure(p.rel, ds.StableVersion, ds.CanaryVersion)
		} else {
			e.cfg.Analysis.Stop(app)
		}
	}
}

// apply carries the decision out: replicas first, then the split. The
// error is reported after the status is persisted.
func (p *pass) apply(ctx context.Context) error {
	d, app := p.plan, p.app
	step := adapters.Step{Index: -1, Reason: d.Status.Message}
	if d.Status.CanaryVersion != "" && p.rel.Strategy.Type == spec.Canary {
		step.Index = d.Status.Step
	}
	var applyErr error
	if p.cached && p.sameAsApplied(d.Replicas) {
		// an idle app on a backend that notifies: what it runs was
		// applied already and has not changed since
	} else if err := p.call.Apply(ctx, p.rel, d.Replicas, step); err != nil {
		applyErr = fmt.Errorf("apply replicas %v for %s: %w", d.Replicas, app, err)
	} else if d.Split != nil && p.router != nil && !d.Split.Equal(p.obs.Split) {
		if err := p.route.SetWeights(ctx, p.rel, *d.Split); err != nil {
			applyErr = fmt.Errorf("set traffic split %v for %s: %w", d.Split.Weights, app, err)
		}
	}
	p.e.firstAction(app, p.rel.Version, d.Replicas)
	return applyErr
}

// persist records the decision and the command's outcome, saves, and
// says when to look again.
func (p *pass) persist(ctx context.Context, applyErr error) (time.Duration, error) {
	e, app, d := p.e, p.app, p.plan
	revs, err := p.track(ctx) // records.go: revisions are written before the record naming them
	if err != nil {
		return 0, p.fail(ctx, err)
	}
	p.rec.Status = d.Status
	p.rec.Identity = p.identity
	p.rec.Observed = VersionCounts(p.insts, d.Status.CanaryVersion, d.Status.StableVersion)
	p.rec.Driver = e.replicaID()
	cmd := p.cmd
	if cmd.ID != "" {
		p.rec.Commands = p.rec.Commands[1:]
		p.rec.LastCommand = &CommandResult{ID: cmd.ID, Command: cmd.Command, Error: d.CommandErr}
	}
	e.setLive(app, func(l *live) {
		l.instances = p.insts
		l.split = p.obs.Split
		if d.Split != nil && applyErr == nil {
			l.split = *d.Split
		}
		l.lastError, l.applyError = "", ""
		l.applied = nil
		if applyErr != nil {
			l.lastError, l.applyError = applyErr.Error(), applyErr.Error()
		} else {
			l.applied = d.Replicas
		}
		l.observedAt = p.now
	})
	if err := p.save(ctx, d.Events); err != nil {
		return 0, err
	}
	p.quiet = !p.busy && applyErr == nil && cmd.ID == "" && len(p.rec.Commands) == 0 &&
		d.RequeueAfter == 0 && p.config.requeue == 0 && p.obs.ApplyError == "" && met(p.obs, d.Replicas) // observe.go
	if cmd.ID != "" {
		e.resolveCommand(*p.rec.LastCommand)
	}
	p.runHooks(ctx) // hooks.go
	e.cfg.Metrics.observeStatus(app, p.before, d.Status, p.now)
	e.cfg.Metrics.observeRevisions(revs)
	p.recordDrift(ctx, d.Events) // records.go
	if applyErr != nil {
		p.log.Error("apply decision", "err", applyErr)
		e.emit(app, rollout.Event{Type: rollout.Warning, Reason: "ApplyFailed", Message: applyErr.Error()})
		return 0, applyErr
	}
	if len(p.rec.Commands) > 0 || p.obs.ApplyError != "" {
		// commands wait; or this pass was planned under the previous
		// pass's apply error and its apply worked: plan again now rather
		// than show Degraded until the resync
		return time.Millisecond, nil
	}
	return sooner(d.RequeueAfter, p.config.requeue), nil
}

// teardown scales a deleted app to zero, then forgets it.
func (p *pass) teardown(ctx context.Context) (time.Duration, error) {
	e, app := p.e, p.app
	insts, err := p.call.Observe(ctx, app)
	if err != nil {
		return 0, fmt.Errorf("observe %s for deletion: %w", app, err)
	}
	if len(insts) > 0 {
		why := adapters.Step{Index: -1, Reason: "deleting: " + app + " was removed from " + e.cfg.Source.Name()}
		if err := p.call.Apply(ctx, p.rel, traffic.Replicas{}, why); err != nil {
			return 0, fmt.Errorf("scale %s to zero: %w", app, err)
		}
		p.rec.Status.Phase, p.rec.Status.Message = rollout.Progressing, fmt.Sprintf("deleting: %d instances left", len(insts))
		e.setLive(app, func(l *live) { l.instances = insts })
		if err := p.save(ctx, nil); err != nil {
			return 0, err
		}
		return time.Second, nil
	}
	for _, a := range []any{p.backend, p.router} {
		if f, ok := a.(adapters.Forgetter); ok {
			if err := f.Forget(ctx, app); err != nil {
				return 0, fmt.Errorf("forget %s: %w", app, err)
			}
		}
	}
	if err := p.forgetRecords(ctx); err != nil {
		return 0, err
	}
	if p.rev != 0 {
		if err := e.deleteRecord(ctx, app, p.rev, p.fence); err != nil {
			return 0, fmt.Errorf("delete state of %s: %w", app, err)
		}
	}
	e.mu.Lock()
	delete(e.live, app)
	delete(e.parsed, app)
	e.mu.Unlock()
	if f, ok := e.cfg.Nudges.(interface {
		Forget(context.Context, string) error
	}); ok {
		_ = f.Forget(ctx, app)
	}
	if e.cfg.Shard != nil {
		_ = e.cfg.Shard.Release(ctx, app)
	}
	e.index.remove(app)
	if e.cfg.Analysis != nil {
		e.cfg.Analysis.Stop(app)
	}
	e.emit(app, rollout.Event{Type: rollout.Normal, Reason: "Deleted", Message: "app removed"})
	e.cfg.Metrics.forget(app)
	e.log.Info("app deleted", "app", app)
	return -1, nil
}

// fail reports err on the app, saves what the pass learnt so far and
// returns err (nil when retrying cannot help).
func (p *pass) fail(ctx context.Context, err error) error {
	p.busy = true
	p.e.setLive(p.app, func(l *live) { l.lastError = err.Error() })
	p.e.emit(p.app, rollout.Event{Type: rollout.Warning, Reason: "ReconcileFailed", Message: err.Error()})
	if serr := p.save(ctx, nil); serr != nil {
		return errors.Join(err, serr)
	}
	if errors.Is(err, adapters.ErrUnsupported) {
		return nil // retrying will not help; the spec must change
	}
	return err
}

// save persists the record when it changed since it was loaded, emits
// events, and publishes the app's view built from the record in hand.
func (p *pass) save(ctx context.Context, events []rollout.Event) error {
	if p.changed() {
		p.rec.UpdatedAt = p.e.cfg.Clock.Now()
		rev, err := p.e.saveRecord(ctx, p.app, p.rec, p.rev, p.fence) // sharding.go
		if err != nil {
			return fmt.Errorf("persist state of %s: %w", p.app, err)
		}
		p.rev, p.stored = rev, p.rec
		p.e.setLive(p.app, func(l *live) { l.rev = rev })
		p.loaded = comparable(p.rec)
		p.viewSpec = p.spec != nil && bytes.Equal(p.rec.Spec, p.stored.Spec)
		p.busy = true
	}
	if len(events) > 0 {
		p.busy = true
	}
	for _, ev := range events {
		p.e.emit(p.app, ev)
	}
	p.publish()
	return nil
}

// changed reports whether the record differs from the one loaded,
// UpdatedAt aside.
func (p *pass) changed() bool {
	return !bytes.Equal(p.rec.Spec, p.stored.Spec) || !bytes.Equal(comparable(p.rec), p.loaded)
}

// comparable is a record's JSON without UpdatedAt and Spec (compared as
// bytes: re-encoding it is most of the cost), taken when it is loaded or
// saved (so later changes to shared slices cannot alter it).
func comparable(r Record) []byte {
	r.UpdatedAt, r.Spec = time.Time{}, nil
	b, _ := json.Marshal(r)
	return b
}

// publish sends the app's view, built from the record as persisted.
func (p *pass) publish() {
	var rel *spec.Release
	if p.viewSpec {
		rel = p.spec
	}
	v, ok := p.e.view(p.app, p.stored, p.rev, rel)
	if ok {
		p.e.index.put(SummaryOf(v), p.rev, true)
		p.e.broker.Publish(p.app, Message{Kind: "status", App: &v})
	}
}
