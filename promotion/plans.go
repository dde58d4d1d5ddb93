package promotion

import (
	"context"
	"errors"
	"fmt"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/internal/etcdjson"
	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// MaxPlanApps bounds the apps of one plan.
const MaxPlanApps = 50

// CreatePlan starts a release plan: apps promoted into env in this
// order, each once the one before is Healthy there.
func (c *Controller) CreatePlan(ctx context.Context, name, env string, apps []string, who Caller) (Plan, error) {
	t, err := c.env(env)
	if err != nil {
		return Plan{}, err
	}
	if t.Config.From == "" {
		return Plan{}, fmt.Errorf("%w: env: %s takes no bundles from another environment (it has no from)", ErrInvalid, env)
	}
	if len(apps) == 0 || len(apps) > MaxPlanApps {
		return Plan{}, fmt.Errorf("%w: apps: name 1 to %d apps, in the order to promote them", ErrInvalid, MaxPlanApps)
	}
	if len(name) > 100 {
		return Plan{}, fmt.Errorf("%w: name: at most 100 characters", ErrInvalid)
	}
	seen := map[string]bool{}
	now := c.clock.Now()
	p := Plan{ID: "p-" + now.UTC().Format("20060102T150405") + "-" + randid.Hex(3), Name: name, Env: env, By: who.Name, Via: who.Via,
		CreatedAt: now, UpdatedAt: now, State: PlanRunning}
	for i, a := range apps {
		if err := spec.CheckApp(a); err != nil {
			return Plan{}, fmt.Errorf("%w: apps[%d]: %v", ErrInvalid, i, err)
		}
		if seen[a] {
			return Plan{}, fmt.Errorf("%w: apps[%d]: %s is listed twice", ErrInvalid, i, a)
		}
		seen[a] = true
		p.Steps = append(p.Steps, PlanStep{App: a, State: StepWaiting})
	}
	err = c.cfg.Store.PutPlan(ctx, p, 0)
	c.audit(ctx, audit.Record{Actor: who.Name, Via: who.Via, Env: env, Target: p.ID, Action: fmt.Sprintf("create release plan %s into %s: %v", p.ID, env, apps),
		Outcome: outcomeOf(err), Error: errString(err)})
	if err != nil {
		return p, err
	}
	c.Kick()
	return p, nil
}

// Plan returns a plan.
func (c *Controller) Plan(ctx context.Context, id string) (Plan, error) {
	p, _, err := c.cfg.Store.Plan(ctx, id)
	return p, err
}

// Plans returns every plan, newest first.
func (c *Controller) Plans(ctx context.Context) ([]Plan, error) { return c.cfg.Store.Plans(ctx) }

// CancelPlan stops a running plan (promotions already written stay).
func (c *Controller) CancelPlan(ctx context.Context, id string, who Caller) (Plan, error) {
	p, err := etcdjson.Update(ctx, c.cfg.Store.cli, c.cfg.Store.planKey(id), func(p *Plan, exists bool) (bool, error) {
		if !exists {
			return false, fmt.Errorf("release plan %s: %w", id, ErrNotFound)
		}
		if p.State != PlanRunning {
			return false, fmt.Errorf("%w: release plan %s is %s", ErrInvalid, id, p.State)
		}
		p.State, p.Message, p.EndedAt, p.UpdatedAt = PlanCancelled, "cancelled by "+who.Name, c.clock.Now(), c.clock.Now()
		return true, nil
	})
	c.audit(ctx, audit.Record{Actor: who.Name, Via: who.Via, Env: p.Env, Target: id, Action: "cancel release plan " + id, Outcome: outcomeOf(err), Error: errString(err)})
	return p, err
}

// advancePlans moves every running plan on.
func (c *Controller) advancePlans(ctx context.Context) {
	plans, err := c.cfg.Store.Plans(ctx)
	if err != nil {
		c.log.Warn("release plans", "err", err)
		return
	}
	for _, p := range plans {
		if p.State != PlanRunning {
			continue
		}
		if err := c.advancePlan(ctx, p.ID); err != nil && ctx.Err() == nil {
			c.log.Warn("release plan", "plan", p.ID, "err", err)
		}
	}
}

// advancePlan moves one plan on: the first step not done is promoted
// (as the plan's creator), followed until Healthy, and the next one
// starts; a refusal that waiting does not change, or a failed rollout,
// fails the plan.
func (c *Controller) advancePlan(ctx context.Context, id string) error {
	p, rev, err := c.cfg.Store.Plan(ctx, id)
	if err != nil || p.State != PlanRunning {
		return err
	}
	before := fmt.Sprint(p)
	now := c.clock.Now()
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.done() {
			continue
		}
		if s.State == StepWaiting || s.State == StepPending {
			if s.StartedAt.IsZero() {
				s.StartedAt = now
			}
			res, err := c.Promote(ctx, p.Env, s.App, "", Caller{Name: p.By, Via: ViaPlan, CanRelease: true})
			if err != nil {
				return err
			}
			switch {
			case res.Request != nil:
				s.Bundle, s.Version = res.Request.Bundle, res.Request.Version
			case res.Verdict != nil && res.Verdict.Candidate != nil:
				s.Bundle, s.Version = res.Verdict.Candidate.Bundle, res.Verdict.Candidate.Version
			}
			switch {
			case res.Outcome == Promoted:
				s.State, s.Rule, s.Reason = StepRollingOut, "", ""
			case res.Outcome == Pending:
				s.State, s.Rule, s.Reason = StepPending, res.Rule, res.Reason
			case res.Rule == environments.RuleUpToDate:
				s.State, s.Rule, s.Reason = StepRollingOut, "", res.Reason
			default:
				s.State, s.Rule, s.Reason, s.EndedAt = StepFailed, res.Rule, res.Reason, now
			}
		}
		if s.State == StepRollingOut {
			st, _, err := c.cfg.Store.State(ctx, p.Env, s.App)
			if err != nil {
				return err
			}
			switch {
			case st != nil && st.Current != nil && st.Current.Bundle == s.Bundle && st.Phase == rollout.Healthy:
				s.State, s.EndedAt = StepHealthy, now
				if s.Reason != "" {
					s.State = StepSkipped
				}
			case st != nil && st.Failed != nil && st.Failed.Bundle == s.Bundle:
				s.State, s.Rule, s.Reason, s.EndedAt = StepFailed, environments.RulePlan, fmt.Sprintf("%s %s failed in %s: %s", s.App, s.Version, p.Env, st.Failed.Reason), now
			}
		}
		if s.State == StepFailed {
			p.State, p.EndedAt = PlanFailed, now
			p.Message = fmt.Sprintf("stopped at %s (%d of %d): %s: %s", s.App, i+1, len(p.Steps), s.Rule, s.Reason)
		}
		break
	}
	if p.State == PlanRunning && p.Steps[len(p.Steps)-1].done() {
		p.State, p.EndedAt, p.Message = PlanSucceeded, now, fmt.Sprintf("%d apps Healthy in %s", len(p.Steps), p.Env)
	}
	if fmt.Sprint(p) == before {
		return nil
	}
	p.UpdatedAt = now
	err = c.cfg.Store.PutPlan(ctx, p, rev)
	if errors.Is(err, etcdjson.ErrConflict) {
		return nil // cancelled or moved on meanwhile: the next round sees it
	}
	if err == nil && p.State != PlanRunning {
		c.audit(ctx, audit.Record{Actor: p.By, Via: ViaPlan, Env: p.Env, Target: p.ID, Action: "release plan " + p.ID + " " + p.State + ": " + p.Message,
			Outcome: map[bool]string{true: audit.Allowed, false: audit.Failed}[p.State == PlanSucceeded]})
	}
	return err
}
