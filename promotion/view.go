package promotion

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/rollout/engine"
)

// Rules are an environment's promotion rules, for display.
type Rules struct {
	From            string   `json:"from,omitempty"`
	Soak            string   `json:"soak,omitempty"`
	Approvals       int      `json:"approvals,omitempty"`
	ApprovalTTL     string   `json:"approvalTTL,omitempty"`
	Windows         []string `json:"windows,omitempty"`
	AutoPromote     bool     `json:"autoPromote,omitempty"`
	RequireAnalysis []string `json:"requireAnalysis,omitempty"`
}

// EnvSummary is one environment in GET /api/v1/environments.
type EnvSummary struct {
	Name    string               `json:"name"`
	Default bool                 `json:"default,omitempty"`
	Centre  string               `json:"centre"`
	Rules   Rules                `json:"rules"`
	Frozen  *environments.Freeze `json:"frozen,omitempty"`
	// Next lists the environments that take bundles from this one.
	Next []string `json:"next,omitempty"`
}

// AppEnv is one app in one environment (GET /api/v1/apps/{app}/environments).
type AppEnv struct {
	EnvSummary
	// Present is false when the app has no release in the environment.
	Present bool `json:"present"`
	// Phase, Message, Version and Identity are the release's, from the
	// environment's engine.
	Phase    string `json:"phase,omitempty"`
	Message  string `json:"message,omitempty"`
	Version  string `json:"version,omitempty"`
	Identity string `json:"identity,omitempty"`
	// Bundle is the bundle running Healthy (nil: none), with
	// HealthySince, its analysis, and EffectiveDigest (the config after
	// this environment's overlay: what its instances report).
	Bundle *environments.Run `json:"bundle,omitempty"`
	// Desired is the bundle of the document in force.
	Desired string                `json:"desired,omitempty"`
	Failed  *environments.Failure `json:"failed,omitempty"`
	// Reported are the config digests the instances report having loaded
	// (ready instances), by digest: how many.
	Reported map[string]int `json:"reported,omitempty"`
	// Promotion is what a promotion from Rules.From into this environment
	// would do now: allowed, or every rule that refuses it.
	Promotion *environments.Verdict `json:"promotion,omitempty"`
	// Request is the latest promotion request into this environment.
	Request *environments.Request `json:"request,omitempty"`
	History []environments.Run    `json:"history,omitempty"`
}

// Environments lists the declared environments in order.
func (c *Controller) Environments() []EnvSummary {
	out := make([]EnvSummary, 0, len(c.cfg.Set.Envs))
	for i := range c.cfg.Set.Envs {
		out = append(out, c.summary(&c.cfg.Set.Envs[i]))
	}
	return out
}

func (c *Controller) summary(e *environments.Environment) EnvSummary {
	s := EnvSummary{Name: e.Name, Default: e.Name == c.cfg.Set.Default, Centre: c.cfg.Envs[e.Name].Source.Name(),
		Frozen: c.frozen(e.Name), Next: c.cfg.Set.Downstream(e.Name),
		Rules: Rules{From: e.From, Approvals: e.Approvals, Windows: e.Windows, AutoPromote: e.AutoPromote, RequireAnalysis: e.RequireAnalysis}}
	if e.Soak.Duration > 0 {
		s.Rules.Soak = e.Soak.Duration.String()
	}
	if e.Approvals > 0 {
		s.Rules.ApprovalTTL = e.TTL().String()
	}
	return s
}

// Overview shows app across every environment, in declared order.
func (c *Controller) Overview(ctx context.Context, app string) ([]AppEnv, error) {
	if err := c.refresh(ctx, app, c.cfg.Set.Names()...); err != nil {
		return nil, err
	}
	var out []AppEnv
	found := false
	for i := range c.cfg.Set.Envs {
		rules := &c.cfg.Set.Envs[i]
		e := c.cfg.Envs[rules.Name]
		ae := AppEnv{EnvSummary: c.summary(rules)}
		v, err := e.Engine.App(ctx, app)
		switch {
		case errors.Is(err, engine.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			found = true
			ae.Present = true
			ae.Phase, ae.Message, ae.Identity = string(v.Status.Phase), v.Status.Message, v.Identity
			if v.Spec != nil {
				ae.Version = v.Spec.Version
			}
			for _, in := range v.Status.Instances {
				if d := in.Meta["configChecksum"]; d != "" && in.Ready {
					if ae.Reported == nil {
						ae.Reported = map[string]int{}
					}
					ae.Reported[d]++
				}
			}
		}
		st, _, err := c.cfg.Store.State(ctx, rules.Name, app)
		if err != nil {
			return nil, err
		}
		if st != nil {
			ae.Bundle, ae.Desired, ae.Failed, ae.History = st.Current, st.Desired, st.Failed, st.History
		}
		if ae.Request, _, err = c.cfg.Store.Request(ctx, rules.Name, app); err != nil {
			return nil, err
		}
		if rules.From != "" {
			in, err := c.input(ctx, rules, app, pendingOnly(ae.Request), "")
			if err != nil {
				return nil, err
			}
			v := environments.Evaluate(in)
			ae.Promotion = &v
		}
		out = append(out, ae)
	}
	if !found {
		return nil, fmt.Errorf("app %s is in no environment: %w", app, engine.ErrNotFound)
	}
	return out, nil
}

// BoardApp is one app's row of the board: the app in every environment.
type BoardApp struct {
	App          string   `json:"app"`
	Environments []AppEnv `json:"environments"`
}

// Board is every app in every environment (GET /api/v1/pipeline): the
// environments in declared order, the apps by name, each app's cell per
// environment as Overview shows it.
type Board struct {
	Environments []EnvSummary `json:"environments"`
	Apps         []BoardApp   `json:"apps"`
}

// Board shows every app of every environment across the environments.
func (c *Controller) Board(ctx context.Context) (Board, error) {
	b := Board{Environments: c.Environments(), Apps: []BoardApp{}}
	names := map[string]bool{}
	for _, e := range c.cfg.Set.Envs {
		apps, err := c.cfg.Envs[e.Name].Engine.AppNames(ctx)
		if err != nil {
			return b, fmt.Errorf("board: list apps in %s: %w", e.Name, err)
		}
		for _, app := range apps {
			names[app] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, app := range sorted {
		ov, err := c.Overview(ctx, app)
		if errors.Is(err, engine.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return b, fmt.Errorf("board: %s: %w", app, err)
		}
		b.Apps = append(b.Apps, BoardApp{App: app, Environments: ov})
	}
	return b, nil
}
