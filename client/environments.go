package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/hooks"
	"github.com/graylane/graylane/promotion"
	"github.com/graylane/graylane/server"
)

// Environments lists the declared environments.
func (c *Client) Environments(ctx context.Context) ([]promotion.EnvSummary, error) {
	var out server.EnvironmentList
	err := c.do(ctx, http.MethodGet, "/api/v1/environments", "", nil, &out)
	return out.Environments, err
}

// AppEnvironments shows app in every environment.
func (c *Client) AppEnvironments(ctx context.Context, app string) ([]promotion.AppEnv, error) {
	var out server.AppEnvironments
	err := c.do(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/environments", "", nil, &out)
	return out.Environments, err
}

// PromoteEnv asks for app's bundle to be promoted into env (bundle, if
// set, names it). A refusal (409) or a pending request (202) is not an
// error: the Result's Outcome, Rule and Reason say what happened.
func (c *Client) PromoteEnv(ctx context.Context, app, env, bundle string) (promotion.Result, error) {
	return c.envAction(ctx, app, env, "promote", bundle)
}

// ApproveEnv approves the pending promotion of app into env.
func (c *Client) ApproveEnv(ctx context.Context, app, env, bundle string) (promotion.Result, error) {
	return c.envAction(ctx, app, env, "approve", bundle)
}

func (c *Client) envAction(ctx context.Context, app, env, action, bundle string) (promotion.Result, error) {
	body, _ := json.Marshal(server.BundleBody{Bundle: bundle})
	var out promotion.Result
	err := c.do(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/environments/"+url.PathEscape(env)+"/"+action, "application/json", body, &out)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusConflict && len(e.body) > 0 && json.Unmarshal(e.body, &out) == nil && out.Outcome != "" {
		return out, nil
	}
	return out, err
}

// Freeze freezes env with a reason.
func (c *Client) Freeze(ctx context.Context, env, reason string) (environments.Freeze, error) {
	body, _ := json.Marshal(server.FreezeBody{Reason: reason})
	var out environments.Freeze
	err := c.do(ctx, http.MethodPut, "/api/v1/environments/"+url.PathEscape(env)+"/freeze", "application/json", body, &out)
	return out, err
}

// Unfreeze lifts env's freeze.
func (c *Client) Unfreeze(ctx context.Context, env string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/environments/"+url.PathEscape(env)+"/freeze", "", nil, nil)
}

// CreatePlan starts a release plan.
func (c *Client) CreatePlan(ctx context.Context, name, env string, apps []string) (promotion.Plan, error) {
	body, _ := json.Marshal(server.PlanBody{Name: name, Env: env, Apps: apps})
	var out promotion.Plan
	err := c.do(ctx, http.MethodPost, "/api/v1/plans", "application/json", body, &out)
	return out, err
}

// Plan reads a release plan.
func (c *Client) Plan(ctx context.Context, id string) (promotion.Plan, error) {
	var out promotion.Plan
	err := c.do(ctx, http.MethodGet, "/api/v1/plans/"+url.PathEscape(id), "", nil, &out)
	return out, err
}

// Plans lists release plans, newest first.
func (c *Client) Plans(ctx context.Context) ([]promotion.Plan, error) {
	var out server.PlanList
	err := c.do(ctx, http.MethodGet, "/api/v1/plans", "", nil, &out)
	return out.Plans, err
}

// CancelPlan stops a running plan.
func (c *Client) CancelPlan(ctx context.Context, id string) (promotion.Plan, error) {
	var out promotion.Plan
	err := c.do(ctx, http.MethodPost, "/api/v1/plans/"+url.PathEscape(id)+"/cancel", "", nil, &out)
	return out, err
}

// Hooks lists app's release hook outcomes (in the client's environment).
func (c *Client) Hooks(ctx context.Context, app string) ([]hooks.Record, error) {
	var out server.HookList
	err := c.do(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/hooks", "", nil, &out)
	return out.Records, err
}

// SpecDocument is GET /api/v1/apps/{app}/spec: the document as the
// centre holds it.
type SpecDocument struct {
	App             string `json:"app"`
	Document        string `json:"document"`
	DocumentVersion string `json:"documentVersion"`
	Centre          string `json:"centre"`
}

// Spec reads an app's document as its centre holds it (comments kept).
func (c *Client) Spec(ctx context.Context, app string) (SpecDocument, error) {
	var out SpecDocument
	err := c.do(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/spec", "", nil, &out)
	return out, err
}
