package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/promotion"
)

// fakeEnvs records what the API asks the promotion controller.
type fakeEnvs struct {
	mu    sync.Mutex
	calls []string
}

var _ Environments = (*fakeEnvs)(nil)

func (f *fakeEnvs) rec(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}
func (f *fakeEnvs) Environments() []promotion.EnvSummary {
	return []promotion.EnvSummary{{Name: "dev"}, {Name: "prod"}}
}
func (f *fakeEnvs) Overview(context.Context, string) ([]promotion.AppEnv, error) {
	return []promotion.AppEnv{}, nil
}
func (f *fakeEnvs) Board(context.Context) (promotion.Board, error) {
	return promotion.Board{Environments: []promotion.EnvSummary{}, Apps: []promotion.BoardApp{}}, nil
}
func (f *fakeEnvs) Promote(_ context.Context, env, app, bundle string, who promotion.Caller) (promotion.Result, error) {
	f.rec("promote " + app + " " + env + " by " + who.Name + map[bool]string{true: " (may release)", false: " (may only request)"}[who.CanRelease])
	return promotion.Result{Outcome: promotion.Pending, Env: env, App: app, Rule: environments.RuleApprovals, Reason: "0 of 2"}, nil
}
func (f *fakeEnvs) Approve(_ context.Context, env, app, bundle string, who promotion.Caller) (promotion.Result, error) {
	f.rec("approve " + app + " " + env + " by " + who.Name)
	return promotion.Result{Outcome: promotion.Refused, Env: env, App: app, Rule: environments.RuleSelfApproval, Reason: "own"}, nil
}
func (f *fakeEnvs) Freeze(_ context.Context, env, reason, by, via string) (environments.Freeze, error) {
	f.rec("freeze " + env + " by " + by)
	return environments.Freeze{Env: env, Reason: reason, By: by}, nil
}
func (f *fakeEnvs) Unfreeze(context.Context, string, string, string) error { return nil }
func (f *fakeEnvs) CreatePlan(_ context.Context, name, env string, apps []string, who promotion.Caller) (promotion.Plan, error) {
	f.rec("plan " + env + " " + strings.Join(apps, ",") + " by " + who.Name)
	return promotion.Plan{ID: "p-1", Env: env}, nil
}
func (f *fakeEnvs) Plan(context.Context, string) (promotion.Plan, error) {
	return promotion.Plan{}, nil
}
func (f *fakeEnvs) Plans(context.Context) ([]promotion.Plan, error) { return nil, nil }
func (f *fakeEnvs) CancelPlan(context.Context, string, promotion.Caller) (promotion.Plan, error) {
	return promotion.Plan{}, nil
}

// Tokens are scoped to environments, apps and teams, with a role per
// environment; every route checks the request's environment and app.
func TestTokenScopesAndRoles(t *testing.T) {
	envs := &fakeEnvs{}
	s := New(Config{Env: "dev", Environments: envs, Teams: map[string][]string{"orders": {"payments"}},
		Tokens: []Token{
			{Name: "dan", Secret: "dan-secret", Envs: map[string]Role{"dev": RoleRelease, "prod": RoleRequest}},
			{Name: "ci", Secret: "ci-secret", Envs: map[string]Role{"dev": RoleRelease}},
			{Name: "pay", Secret: "pay-secret", Role: RoleAdmin, Teams: []string{"payments"}},
			{Name: "shopper", Secret: "shop-secret", Role: RoleApprove, Apps: []string{"shop"}},
			{Name: "ops", Secret: "ops-secret", Role: RoleWrite},
			{Name: "viewer", Secret: "view-secret", Role: RoleRead},
		}})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	call := func(secret, method, path, body string) (int, apiError) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apiError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	for _, tc := range []struct {
		who, method, path, body string
		status                  int
		rule, says              string
	}{
		{"dan-secret", "POST", "/api/v1/apps/shop/environments/prod/promote", "", 202, "approvals", ""},
		{"dan-secret", "POST", "/api/v1/apps/shop/environments/prod/approve", "", 403, "role", `token "dan" has role request in prod, which may not approve promotions`},
		{"ci-secret", "POST", "/api/v1/apps/shop/environments/prod/promote", "", 403, "scope", `token "ci" is scoped to environments dev, not prod`},
		{"ci-secret", "GET", "/api/v1/environments", "", 200, "", ""},
		{"ci-secret", "PUT", "/api/v1/environments/prod/freeze", `{"reason":"x"}`, 403, "scope", "not prod"},
		{"dan-secret", "PUT", "/api/v1/environments/dev/freeze", `{"reason":"x"}`, 403, "role", "may not freeze"},
		{"pay-secret", "POST", "/api/v1/apps/orders/environments/prod/promote", "", 202, "approvals", ""},
		{"pay-secret", "POST", "/api/v1/apps/shop/environments/prod/promote", "", 403, "scope", `may not act on app shop`},
		{"shop-secret", "POST", "/api/v1/apps/shop/environments/prod/approve", "", 409, "self-approval", ""},
		{"shop-secret", "POST", "/api/v1/apps/web/environments/prod/approve", "", 403, "scope", "app web"},
		{"view-secret", "POST", "/api/v1/apps/shop/environments/prod/promote", "", 403, "role", `token "viewer" is read-only`},
		{"ops-secret", "PUT", "/api/v1/environments/prod/freeze", `{"reason":"audit"}`, 200, "", ""},
		{"dan-secret", "POST", "/api/v1/plans", `{"env":"prod","apps":["shop"]}`, 403, "role", "may not release"},
		{"ops-secret", "POST", "/api/v1/plans", `{"env":"prod","apps":["orders","web"]}`, 201, "", ""},
		{"pay-secret", "POST", "/api/v1/plans", `{"env":"prod","apps":["orders","web"]}`, 403, "scope", "apps[1]"},
	} {
		code, e := call(tc.who, tc.method, tc.path, tc.body)
		if code != tc.status || e.Rule != tc.rule || !strings.Contains(e.Error, tc.says) {
			t.Errorf("%s %s as %s: %d rule %q %q; want %d rule %q saying %q", tc.method, tc.path, tc.who, code, e.Rule, e.Error, tc.status, tc.rule, tc.says)
		}
	}
	envs.mu.Lock()
	defer envs.mu.Unlock()
	want := "promote shop prod by dan (may only request); promote orders prod by pay (may release); approve shop prod by shopper; freeze prod by ops; plan prod orders,web by ops"
	if got := strings.Join(envs.calls, "; "); got != want {
		t.Fatalf("the controller was asked:\n %s\nwant\n %s", got, want)
	}
}
