package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/internal/etcdjson"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
)

// Config configures a Runner.
type Config struct {
	// Store keeps the outcomes (required).
	Store Store
	// Env names the environment (in payloads, templates and records).
	Env string
	// Bundle returns the bundle digest of a spec in force (its code
	// version and bound config files, before the environment's overlay);
	// required.
	Bundle func(ctx context.Context, rel *spec.Release) (string, error)
	// Notify asks the engine for a pass over app when a hook ended.
	Notify func(app string)
	// Clock stamps outcomes (default the real clock).
	Clock clock.Clock
	// Logger defaults to discarding.
	Logger *slog.Logger
	// HTTPClient makes HTTP hooks' requests (default: a private one; the
	// hook's timeout bounds each request).
	HTTPClient *http.Client
}

// Runner runs release hooks for one environment's engine.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	owner string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]bool // app/bundle/kind
	posted  map[string]bool // app/bundle whose postRelease ended
}

var _ engine.HookRunner = (*Runner)(nil)

// New returns a Runner; Close stops the hooks it runs.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Bundle == nil {
		return nil, errors.New("hooks: Store and Bundle are required")
	}
	cfg.Clock = clock.Or(cfg.Clock)
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Notify == nil {
		cfg.Notify = func(string) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{cfg: cfg, log: cfg.Logger, owner: randid.Hex(6), ctx: ctx, cancel: cancel,
		running: map[string]bool{}, posted: map[string]bool{}}, nil
}

// Close stops running hooks (their commands are killed) and waits.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
}

func key(app, bundle, kind string) string { return app + "/" + bundle + "/" + kind }

// Gate implements engine.HookRunner.
func (r *Runner) Gate(ctx context.Context, app string, ref *engine.SpecRef) (*rollout.HookGate, error) {
	h := ref.Spec.Hooks
	if h == nil || (len(h.PreRelease) == 0 && len(h.ConfirmPromotion) == 0) {
		return nil, nil
	}
	bundle, err := r.cfg.Bundle(ctx, ref.Spec)
	if err != nil {
		return nil, fmt.Errorf("bundle of %s %s: %w", app, ref.Spec.Version, err)
	}
	rec, _, err := r.cfg.Store.Get(ctx, app, bundle)
	if err != nil {
		return nil, err
	}
	g := &rollout.HookGate{Identity: ref.Identity, Hooks: map[string]rollout.HookState{}}
	for _, kind := range []string{rollout.HookPreRelease, rollout.HookConfirmPromotion} {
		if len(h.Kind(kind)) == 0 {
			continue
		}
		st := rollout.HookState{State: rec.State(kind)}
		if k := rec.Kinds[kind]; k != nil {
			st.Message = k.Message
		}
		r.mu.Lock()
		orphan := st.State == rollout.HookRunning && !r.running[key(app, bundle, kind)]
		r.mu.Unlock()
		if orphan {
			// started by a graylane that died (or lost leadership): start again
			st = rollout.HookState{State: rollout.HookIdle, Message: "interrupted; starting again"}
		}
		g.Hooks[kind] = st
	}
	return g, nil
}

// Start implements engine.HookRunner.
func (r *Runner) Start(ctx context.Context, app string, ref *engine.SpecRef, kinds []string) error {
	bundle, err := r.cfg.Bundle(ctx, ref.Spec)
	if err != nil {
		return fmt.Errorf("bundle of %s %s: %w", app, ref.Spec.Version, err)
	}
	for _, kind := range kinds {
		if err := r.start(ctx, app, bundle, ref, kind); err != nil {
			return err
		}
	}
	return nil
}

// start marks kind running for the bundle (compare-and-swap) and runs its
// hooks in the background.
func (r *Runner) start(ctx context.Context, app, bundle string, ref *engine.SpecRef, kind string) error {
	hooks := ref.Spec.Hooks.Kind(kind)
	if len(hooks) == 0 {
		return nil
	}
	k := key(app, bundle, kind)
	r.mu.Lock()
	if r.running[k] {
		r.mu.Unlock()
		return nil
	}
	r.running[k] = true
	r.mu.Unlock()
	started := false
	defer func() {
		if !started {
			r.mu.Lock()
			delete(r.running, k)
			r.mu.Unlock()
		}
	}()
	var done []string
	rec, err := r.update(ctx, app, bundle, ref, func(rec *Record) bool {
		kr := rec.Kinds[kind]
		if kr != nil && (kr.State == rollout.HookPassed || kr.State == rollout.HookFailed) {
			// passed: once per bundle; failed: a gate waits for Retry, a
			// post-release notification is not sent again
			return false
		}
		if kr == nil {
			kr = &Kind{}
			rec.Kinds[kind] = kr
		}
		kr.State, kr.Attempt, kr.Owner, kr.StartedAt, kr.EndedAt = rollout.HookRunning, kr.Attempt+1, r.owner, r.cfg.Clock.Now(), time.Time{}
		kr.Message = "running " + hooks[0].Name
		return true
	})
	if err != nil {
		return fmt.Errorf("start %s hooks of %s: %w", kind, app, err)
	}
	if kr := rec.Kinds[kind]; kr == nil || kr.State != rollout.HookRunning || kr.Owner != r.owner {
		return nil
	}
	// hooks that passed in an earlier attempt of this bundle are not run again
	for _, o := range rec.Kinds[kind].Outcomes {
		if o.OK {
			done = append(done, o.Hook)
		}
	}
	started = true
	attempt := rec.Kinds[kind].Attempt
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, k)
			r.mu.Unlock()
			r.cfg.Notify(app)
		}()
		r.runKind(app, bundle, ref, kind, hooks, done, attempt)
	}()
	r.log.Info("release hooks started", "app", app, "kind", kind, "bundle", bundle[:min(12, len(bundle))], "attempt", attempt)
	return nil
}

// runKind runs the hooks of one kind in order, recording each outcome; the
// first failure ends the run.
func (r *Runner) runKind(app, bundle string, ref *engine.SpecRef, kind string, hooks []spec.Hook, done []string, attempt int) {
	data := spec.HookData{App: app, Env: r.cfg.Env, Version: ref.Spec.Version, Identity: ref.Identity, Bundle: bundle}
	state, msg := rollout.HookPassed, ""
	for _, h := range hooks {
		if contains(done, h.Name) {
			continue
		}
		if r.ctx.Err() != nil {
			return // graylane stops: the next one starts it again
		}
		var o Outcome
		rh, err := h.Render(data)
		if err != nil {
			o = Outcome{Hook: h.Name, Status: "render: " + err.Error(), StartedAt: r.cfg.Clock.Now(), EndedAt: r.cfg.Clock.Now()}
		} else {
			o = r.run(r.ctx, rh, Payload{App: app, Env: r.cfg.Env, Version: ref.Spec.Version, Identity: ref.Identity, Bundle: bundle, Kind: kind, Hook: h.Name})
		}
		if r.ctx.Err() != nil {
			return
		}
		o.Attempt = attempt
		last := kind != PostRelease && !o.OK
		_, err = r.update(context.Background(), app, bundle, ref, func(rec *Record) bool {
			kr := rec.Kinds[kind]
			if kr == nil {
				kr = &Kind{}
				rec.Kinds[kind] = kr
			}
			kr.Outcomes = append(kr.Outcomes, o)
			if len(kr.Outcomes) > MaxOutcomes {
				kr.Outcomes = kr.Outcomes[len(kr.Outcomes)-MaxOutcomes:]
			}
			kr.Message = fmt.Sprintf("%s: %s", h.Name, o.Status)
			return true
		})
		if err != nil {
			r.log.Error("record a hook outcome", "app", app, "hook", h.Name, "err", err)
		}
		lvl := slog.LevelInfo
		if !o.OK {
			lvl = slog.LevelWarn
		}
		r.log.Log(context.Background(), lvl, "release hook ended", "app", app, "kind", kind, "hook", h.Name, "ok", o.OK, "status", o.Status)
		if !o.OK {
			state = rollout.HookFailed
			msg = fmt.Sprintf("%s: %s%s", h.Name, o.Status, tail(o.Output))
			if last {
				break
			}
		}
	}
	if msg == "" {
		msg = "all passed"
	}
	_, err := r.update(context.Background(), app, bundle, ref, func(rec *Record) bool {
		kr := rec.Kinds[kind]
		if kr == nil || kr.Owner != r.owner || kr.State != rollout.HookRunning {
			return false
		}
		kr.State, kr.Message, kr.EndedAt = state, msg, r.cfg.Clock.Now()
		return true
	})
	if err != nil {
		r.log.Error("record hook state", "app", app, "kind", kind, "err", err)
	}
	if kind == PostRelease {
		r.mu.Lock()
		r.posted[app+"/"+bundle] = true
		r.mu.Unlock()
	}
}

// tail is the last line of a hook's output, for messages.
func tail(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if len(out) > 200 {
		out = out[:200] + "…"
	}
	return " (" + out + ")"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Retry implements engine.HookRunner.
func (r *Runner) Retry(ctx context.Context, app string, ref *engine.SpecRef, kinds []string) error {
	bundle, err := r.cfg.Bundle(ctx, ref.Spec)
	if err != nil {
		return fmt.Errorf("bundle of %s %s: %w", app, ref.Spec.Version, err)
	}
	_, err = r.update(ctx, app, bundle, ref, func(rec *Record) bool {
		changed := false
		for _, kind := range kinds {
			if kr := rec.Kinds[kind]; kr != nil && kr.State == rollout.HookFailed {
				kr.State, kr.Message = rollout.HookIdle, "retrying"
				changed = true
			}
		}
		return changed
	})
	return err
}

// Released implements engine.HookRunner.
func (r *Runner) Released(ctx context.Context, app string, ref *engine.SpecRef) error {
	if ref.Spec.Hooks == nil || len(ref.Spec.Hooks.PostRelease) == 0 {
		return nil
	}
	bundle, err := r.cfg.Bundle(ctx, ref.Spec)
	if err != nil {
		return fmt.Errorf("bundle of %s %s: %w", app, ref.Spec.Version, err)
	}
	r.mu.Lock()
	done := r.posted[app+"/"+bundle]
	r.mu.Unlock()
	if done {
		return nil
	}
	rec, _, err := r.cfg.Store.Get(ctx, app, bundle)
	if err != nil {
		return err
	}
	if st := rec.State(PostRelease); st == rollout.HookPassed || st == rollout.HookFailed {
		r.mu.Lock()
		r.posted[app+"/"+bundle] = true
		r.mu.Unlock()
		return nil
	}
	return r.start(ctx, app, bundle, ref, PostRelease)
}

// Records returns app's hook records, newest first.
func (r *Runner) Records(ctx context.Context, app string) ([]Record, error) {
	return r.cfg.Store.List(ctx, app)
}

// update changes the bundle's record with compare-and-swap (change
// returns false to write nothing) and returns it as stored.
func (r *Runner) update(ctx context.Context, app, bundle string, ref *engine.SpecRef, change func(*Record) bool) (Record, error) {
	var last error
	for attempt := 0; attempt < 8; attempt++ {
		rec, rev, err := r.cfg.Store.Get(ctx, app, bundle)
		if err != nil {
			return rec, err
		}
		if rev == 0 {
			rec = Record{App: app, Env: r.cfg.Env, Bundle: bundle, Version: ref.Spec.Version, Identity: ref.Identity}
		}
		if rec.Kinds == nil {
			rec.Kinds = map[string]*Kind{}
		}
		if !change(&rec) {
			return rec, nil
		}
		rec.UpdatedAt = r.cfg.Clock.Now()
		if err := r.cfg.Store.Put(ctx, rec, rev); err != nil {
			if errors.Is(err, etcdjson.ErrConflict) {
				last = err
				continue
			}
			return rec, err
		}
		return rec, nil
	}
	return Record{}, fmt.Errorf("hook record of %s: gave up after repeated concurrent writes: %w", app, last)
}
