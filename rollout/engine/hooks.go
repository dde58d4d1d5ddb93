package engine

import (
	"context"
	"fmt"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// HookRunner runs release hooks (hooks.Runner): the gates of
// rollout.HookGate and post-release notifications. The engine calls it
// only for releases with a hooks section, from the leader's passes.
// Every method may read or write etcd; errors fail the pass (retried).
type HookRunner interface {
	// Gate reports the state of the hooks of rel (the spec in force, its
	// version the code version) for release identity; nil when rel has no
	// gating hooks.
	Gate(ctx context.Context, app string, rel *SpecRef) (*rollout.HookGate, error)
	// Start starts the hooks of the kinds for rel, without waiting. A
	// hook that is running or has passed is not started again: a
	// pre-release hook runs once per bundle.
	Start(ctx context.Context, app string, rel *SpecRef, kinds []string) error
	// Retry forgets the failure of the kinds so that Start runs them again.
	Retry(ctx context.Context, app string, rel *SpecRef, kinds []string) error
	// Released runs rel's post-release hooks once, now that it is Healthy.
	Released(ctx context.Context, app string, rel *SpecRef) error
}

// Freezer says whether the engine's environment is frozen: no release
// starts while it is (rollout.Input.Frozen).
type Freezer interface {
	// Frozen returns the freeze's reason, "" when not frozen. It must not
	// block: it answers from memory.
	Frozen() string
}

// gateHooks asks the hook runner for the state of the desired release's
// hooks before the planner runs.
func (p *pass) gateHooks(ctx context.Context) error {
	r := p.e.cfg.Hooks
	if r == nil || p.spec.Hooks == nil {
		return nil
	}
	g, err := r.Gate(ctx, p.app, p.specRef())
	if err != nil {
		return fmt.Errorf("release hooks of %s: %w", p.app, err)
	}
	p.hooks = g
	return nil
}

// runHooks starts what the decision asks for, once the status naming it
// is persisted: retried and new gating hooks, and the post-release hooks
// of a release that is Healthy.
func (p *pass) runHooks(ctx context.Context) {
	r, d := p.e.cfg.Hooks, p.plan
	if r == nil || p.spec.Hooks == nil {
		return
	}
	ref := p.specRef()
	var errs []error
	if len(d.RetryHooks) > 0 {
		errs = append(errs, r.Retry(ctx, p.app, ref, d.RetryHooks))
	}
	if len(d.StartHooks) > 0 {
		errs = append(errs, r.Start(ctx, p.app, ref, d.StartHooks))
	}
	if st := d.Status; st.Phase == rollout.Healthy && st.StableVersion == p.identity && len(p.spec.Hooks.PostRelease) > 0 {
		errs = append(errs, r.Released(ctx, p.app, ref))
	}
	for _, err := range errs {
		if err != nil {
			p.log.Error("release hooks", "err", err)
			p.e.emit(p.app, rollout.Event{Type: rollout.Warning, Reason: "HookError", Message: err.Error()})
		}
	}
}

// frozen is the engine's environment's freeze reason ("" when none).
func (e *Engine) frozen() string {
	if e.cfg.Freezer == nil {
		return ""
	}
	return e.cfg.Freezer.Frozen()
}

// SpecRef is the release a hook runner acts for: the spec in force (its
// version the code version) and the release identity the engine binds it
// to (configrelease).
type SpecRef struct {
	Spec     *spec.Release
	Identity string
}

func (p *pass) specRef() *SpecRef { return &SpecRef{Spec: p.spec, Identity: p.identity} }
