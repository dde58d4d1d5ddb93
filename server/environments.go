package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/hooks"
	"github.com/graylane/graylane/promotion"
	"github.com/graylane/graylane/spec"
)

// Environments is what the routes across environments need
// (promotion.Controller).
type Environments interface {
	// Environments lists the declared environments in order.
	Environments() []promotion.EnvSummary
	// Overview shows an app in every environment, or an error wrapping
	// engine.ErrNotFound.
	Overview(ctx context.Context, app string) ([]promotion.AppEnv, error)
	// Board shows every app in every environment.
	Board(ctx context.Context) (promotion.Board, error)
	Promote(ctx context.Context, env, app, bundle string, who promotion.Caller) (promotion.Result, error)
	Approve(ctx context.Context, env, app, bundle string, who promotion.Caller) (promotion.Result, error)
	Freeze(ctx context.Context, env, reason, by, via string) (environments.Freeze, error)
	Unfreeze(ctx context.Context, env, by, via string) error
	CreatePlan(ctx context.Context, name, env string, apps []string, who promotion.Caller) (promotion.Plan, error)
	Plan(ctx context.Context, id string) (promotion.Plan, error)
	Plans(ctx context.Context) ([]promotion.Plan, error)
	CancelPlan(ctx context.Context, id string, who promotion.Caller) (promotion.Plan, error)
}

// HookRecords serves release hook outcomes (hooks.Runner).
type HookRecords interface {
	Records(ctx context.Context, app string) ([]hooks.Record, error)
}

var _ Environments = (*promotion.Controller)(nil)

// environmentRoutes registers the routes across environments:
//
//	GET    /environments                          the environments, their rules, freezes
//	PUT    /environments/{env}/freeze             {"reason"}: freeze (admin)
//	DELETE /environments/{env}/freeze             unfreeze (admin)
//	GET    /apps/{app}/environments               the app in every environment
//	GET    /pipeline                              every app in every environment (the console's board)
//	POST   /apps/{app}/environments/{env}/promote {"bundle"?}: promote from env's from (request)
//	POST   /apps/{app}/environments/{env}/approve {"bundle"?}: approve the pending promotion (approve)
//	GET    /plans, POST /plans {"name","env","apps"}, GET /plans/{id}, POST /plans/{id}/cancel
//	GET    /apps/{app}/hooks                      release hook outcomes in this API's environment
func (s *Server) environmentRoutes(v1 *gin.RouterGroup) {
	read := s.authenticate(RoleRead)
	v1.GET("/environments", anyEnv, read, s.listEnvironments)
	v1.PUT("/environments/:env/freeze", s.authenticate(RoleAdmin), s.freeze)
	v1.DELETE("/environments/:env/freeze", s.authenticate(RoleAdmin), s.unfreeze)
	v1.GET("/apps/:app/environments", anyEnv, read, s.appEnvironments)
	v1.GET("/pipeline", anyEnv, read, s.pipeline)
	v1.POST("/apps/:app/environments/:env/promote", s.authenticate(RoleRequest), s.promoteEnv)
	v1.POST("/apps/:app/environments/:env/approve", s.authenticate(RoleApprove), s.approveEnv)
	v1.GET("/plans", anyEnv, read, s.listPlans)
	v1.POST("/plans", s.planAuth, s.createPlan)
	v1.GET("/plans/:id", anyEnv, read, s.getPlan)
	v1.POST("/plans/:id/cancel", anyEnv, s.authenticate(RoleRelease), s.cancelPlan)
	v1.GET("/apps/:app/hooks", read, s.appHooks)
}

func (s *Server) environments(c *gin.Context) (Environments, bool) {
	if s.cfg.Environments == nil {
		c.AbortWithStatusJSON(http.StatusNotImplemented, apiError{Error: "environments are not configured in this graylane"})
		return nil, false
	}
	return s.cfg.Environments, true
}

// caller is the request's caller for the promotion controller.
func (s *Server) caller(c *gin.Context) promotion.Caller {
	v := via(c)
	return promotion.Caller{Name: actor(c), Via: v, CanRelease: allows(callerRole(c), RoleRelease)}
}

// failEnv maps the controller's errors to statuses.
func (s *Server) failEnv(c *gin.Context, err error) {
	switch {
	case errors.Is(err, promotion.ErrUnknownEnv), errors.Is(err, promotion.ErrNotFound):
		c.AbortWithStatusJSON(http.StatusNotFound, apiError{Error: err.Error()})
		note(c).err = err.Error()
	case errors.Is(err, promotion.ErrInvalid):
		s.fail(c, fmt.Errorf("%w: %v", errBadRequest, err))
	default:
		s.fail(c, err)
	}
}

// EnvironmentList is GET /api/v1/environments.
type EnvironmentList struct {
	Environments []promotion.EnvSummary `json:"environments"`
}

func (s *Server) listEnvironments(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, EnvironmentList{Environments: e.Environments()})
}

// AppEnvironments is GET /api/v1/apps/{app}/environments.
type AppEnvironments struct {
	App          string             `json:"app"`
	Environments []promotion.AppEnv `json:"environments"`
}

func (s *Server) appEnvironments(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	ov, err := e.Overview(c.Request.Context(), app)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, AppEnvironments{App: app, Environments: ov})
}

func (s *Server) pipeline(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	b, err := e.Board(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

// BundleBody is the optional body of promote and approve: the bundle
// (digest, or a prefix of at least 12 hex digits) the caller means.
type BundleBody struct {
	Bundle string `json:"bundle,omitempty"`
}

func (s *Server) bundleBody(c *gin.Context) (string, bool) {
	raw, err := io.ReadAll(io.LimitReader(c.Request.Body, 4<<10))
	if err != nil {
		s.fail(c, fmt.Errorf("%w: read body: %v", errBadRequest, err))
		return "", false
	}
	var b BundleBody
	if len(strings.TrimSpace(string(raw))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			s.fail(c, &fieldErr{field: "body", err: fmt.Errorf(`%w: want {"bundle": "<digest>"} or no body: %v`, errBadRequest, err)})
			return "", false
		}
	}
	if b.Bundle != "" && (len(b.Bundle) < environments.ShortLen || strings.Trim(b.Bundle, "0123456789abcdef") != "") {
		s.fail(c, &fieldErr{field: "bundle", err: fmt.Errorf("%w: %q is not a bundle digest (at least %d lower-case hex digits)", errBadRequest, b.Bundle, environments.ShortLen)})
		return "", false
	}
	return b.Bundle, true
}

// answer sends a promotion or approval result: 200 promoted or approved,
// 202 pending, 409 refused (with the rule).
func (s *Server) answer(c *gin.Context, what string, r promotion.Result) {
	content := map[string]any{"outcome": r.Outcome, "rule": r.Rule, "reason": r.Reason}
	if r.Verdict != nil && r.Verdict.Candidate != nil {
		content["bundle"], content["version"] = r.Verdict.Candidate.Bundle, r.Verdict.Candidate.Version
	}
	s.annotate(c, c.Param("app"), fmt.Sprintf("%s %s into %s: %s", what, c.Param("app"), r.Env, r.Outcome), content)
	switch r.Outcome {
	case promotion.Refused:
		note(c).err = r.Rule + ": " + r.Reason
		c.JSON(http.StatusConflict, r)
	case promotion.Pending:
		c.JSON(http.StatusAccepted, r)
	default:
		c.JSON(http.StatusOK, r)
	}
}

func (s *Server) promoteEnv(c *gin.Context) { s.bundleAction(c, "promote", Environments.Promote) }

func (s *Server) approveEnv(c *gin.Context) {
	s.bundleAction(c, "approve promotion of", Environments.Approve)
}

// bundleAction runs a promotion action (promote, approve) on the bundle
// the body names for the app in the environment of the path.
func (s *Server) bundleAction(c *gin.Context, what string,
	act func(Environments, context.Context, string, string, string, promotion.Caller) (promotion.Result, error)) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	bundle, ok := s.bundleBody(c)
	if !ok {
		return
	}
	r, err := act(e, c.Request.Context(), c.Param("env"), app, bundle, s.caller(c))
	if err != nil {
		s.failEnv(c, err)
		return
	}
	s.answer(c, what, r)
}

// FreezeBody is the body of PUT /environments/{env}/freeze.
type FreezeBody struct {
	Reason string `json:"reason"`
}

func (s *Server) freeze(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	var b FreezeBody
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.fail(c, &fieldErr{field: "reason", err: fmt.Errorf(`%w: want {"reason": "..."}: %v`, errBadRequest, err)})
		return
	}
	env := c.Param("env")
	s.annotate(c, "", "freeze "+env, map[string]any{"env": env, "reason": b.Reason})
	f, err := e.Freeze(c.Request.Context(), env, b.Reason, actor(c), via(c))
	if errors.Is(err, promotion.ErrInvalid) {
		s.fail(c, &fieldErr{field: "reason", err: fmt.Errorf("%w: %v", errBadRequest, err)})
		return
	}
	if err != nil {
		s.failEnv(c, err)
		return
	}
	c.JSON(http.StatusOK, f)
}

func (s *Server) unfreeze(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	env := c.Param("env")
	s.annotate(c, "", "unfreeze "+env, map[string]any{"env": env})
	if err := e.Unfreeze(c.Request.Context(), env, actor(c), via(c)); err != nil {
		s.failEnv(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"env": env, "frozen": false})
}

// PlanBody is the body of POST /plans.
type PlanBody struct {
	Name string `json:"name,omitempty"`
	// Env is the environment the apps are promoted into.
	Env string `json:"env"`
	// Apps in the order to promote them.
	Apps []string `json:"apps"`
}

// planAuth reads the plan's environment from the body and checks that
// the caller may release there (the plan carries its promotions out).
func (s *Server) planAuth(c *gin.Context) {
	raw, err := io.ReadAll(io.LimitReader(c.Request.Body, 16<<10))
	if err != nil {
		s.fail(c, fmt.Errorf("%w: read body: %v", errBadRequest, err))
		return
	}
	var b PlanBody
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.fail(c, &fieldErr{field: "body", err: fmt.Errorf(`%w: want {"env": "prod", "apps": ["orders", "web"]}: %v`, errBadRequest, err)})
		return
	}
	c.Set("graylane.plan", b)
	c.Params = append(c.Params, gin.Param{Key: "env", Value: b.Env})
	s.authenticate(RoleRelease)(c)
	if c.IsAborted() {
		return
	}
	for i, a := range b.Apps {
		if spec.CheckApp(a) == nil && !s.appInScope(s.tokenOf(c), a) {
			why := fmt.Sprintf("token %q may not act on app %s (apps[%d])", actor(c), a, i)
			note(c).err = why
			c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: why, Rule: ruleScope})
			return
		}
	}
}

// tokenOf is the request's token (zero without tokens).
func (s *Server) tokenOf(c *gin.Context) Token {
	name := actor(c)
	for _, t := range s.cfg.Tokens {
		if t.Name == name {
			return t
		}
	}
	return Token{}
}

func (s *Server) createPlan(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	v, _ := c.Get("graylane.plan")
	b := v.(PlanBody)
	s.annotate(c, "", fmt.Sprintf("create release plan into %s: %s", b.Env, strings.Join(b.Apps, ", ")), map[string]any{"env": b.Env, "apps": b.Apps, "name": b.Name})
	p, err := e.CreatePlan(c.Request.Context(), b.Name, b.Env, b.Apps, s.caller(c))
	if err != nil {
		s.failEnv(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

// PlanList is GET /api/v1/plans.
type PlanList struct {
	Plans []promotion.Plan `json:"plans"`
}

func (s *Server) listPlans(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	ps, err := e.Plans(c.Request.Context())
	if err != nil {
		s.failEnv(c, err)
		return
	}
	if ps == nil {
		ps = []promotion.Plan{}
	}
	c.JSON(http.StatusOK, PlanList{Plans: ps})
}

func (s *Server) getPlan(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	p, err := e.Plan(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failEnv(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (s *Server) cancelPlan(c *gin.Context) {
	e, ok := s.environments(c)
	if !ok {
		return
	}
	id := c.Param("id")
	s.annotate(c, "", "cancel release plan "+id, nil)
	p, err := e.CancelPlan(c.Request.Context(), id, s.caller(c))
	if err != nil {
		s.failEnv(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// HookList is GET /api/v1/apps/{app}/hooks.
type HookList struct {
	App     string         `json:"app"`
	Env     string         `json:"env,omitempty"`
	Records []hooks.Record `json:"records"`
}

func (s *Server) appHooks(c *gin.Context) {
	if s.cfg.Hooks == nil {
		c.AbortWithStatusJSON(http.StatusNotImplemented, apiError{Error: "release hooks are not configured in this graylane"})
		return
	}
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	recs, err := s.cfg.Hooks.Records(c.Request.Context(), app)
	if err != nil {
		s.fail(c, err)
		return
	}
	if recs == nil {
		recs = []hooks.Record{}
	}
	c.JSON(http.StatusOK, HookList{App: app, Env: s.cfg.Env, Records: recs})
}
