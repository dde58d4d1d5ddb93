package browsertest

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestConsoleEnvironments: the Environments board (stages as columns)
// shows what runs in test and prod and that prod may take test's bundle;
// a developer (who may only request in prod) presses Promote and the cell
// says the request waits for an approval, naming the rule, and prod does
// not change; the developer may not approve their own request; an admin
// signs in, sees the request and approves it; prod then runs test's
// bundle; the admin freezes prod from the board with a reason, which
// shows on the board and on the app's page across environments; every
// press is in the audit log with its token and via the console.
func TestConsoleEnvironments(t *testing.T) {
	testenv.IntegrationTest(t)
	b := StartBrowser(t)
	g := startGraylane(t, map[string]any{
		"environments": []map[string]any{
			{"name": "test", "source": map[string]any{"type": "etcd"}},
			{"name": "prod", "source": map[string]any{"type": "etcd"}, "from": "test"},
		},
		"http": map[string]any{"tokens": []map[string]any{
			{"name": "ops", "token": "ops-token-123", "role": "admin"},
			{"name": "dev", "token": "dev-token-123", "environments": map[string]any{"test": "release", "prod": "request"}},
		}},
	})
	sys := NewDeploySystem(t)
	ops := g.Client().WithToken("ops-token-123")
	steps := `[{setWeight: 50}, {setWeight: 100}]`
	for _, env := range []string{"test", "prod"} {
		if err := ops.InEnv(env).PutSpec(t.Context(), "shop", []byte(sys.Spec("shop", "v1", 2, steps))); err != nil {
			t.Fatal(err)
		}
		waitApp(t, ops.InEnv(env), "shop", 60*time.Second, "v1 healthy in "+env, healthyAt("v1"))
	}
	if err := ops.InEnv("test").PutSpec(t.Context(), "shop", []byte(sys.Spec("shop", "v2", 2, steps))); err != nil {
		t.Fatal(err)
	}
	waitApp(t, ops.InEnv("test"), "shop", 60*time.Second, "v2 healthy in test", healthyAt("v2"))

	signIn := func(token string) {
		t.Helper()
		b.Eventually(10*time.Second, "the sign-in page", `document.querySelector('h1')?.textContent === 'Sign in'`)
		b.Do("sign in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.KeyEvent("\r"))
		b.Eventually(10*time.Second, "signed in", `document.querySelector('[data-testid=user]')`)
	}
	cell := func(env string) string { return `document.querySelector('[data-cell="shop/` + env + `"]')` }
	b.Do("open the board", chromedp.Navigate(g.APIURL+"/environments"))
	signIn("dev-token-123")
	b.Eventually(20*time.Second, "two stages in order", `[...document.querySelectorAll('[data-testid=board] [data-stage]')].map(e => e.dataset.stage).join() === 'test,prod'`)
	b.Eventually(20*time.Second, "test runs v2", cell("test")+`?.querySelector('[data-testid=running]')?.textContent.includes('v2')`)
	b.Eventually(20*time.Second, "prod may take v2", cell("prod")+`?.querySelector('[data-testid=promotion]')?.textContent.includes('v2')`)
	b.Do("dev promotes into prod", chromedp.Click(chromedp.CSS(`button[data-promote="shop/prod"]`)))
	b.Eventually(20*time.Second, "the request waits for an approval, naming the rule", cell("prod")+`?.querySelector('[data-testid=outcome]')?.textContent.includes('approvals: 0 of 1')`)
	if v, err := ops.InEnv("prod").App(t.Context(), "shop"); err != nil || v.Spec.Version != "v1" {
		t.Fatalf("a developer's request changed prod: %v %+v", err, v.Spec)
	}
	b.Eventually(20*time.Second, "the refusing rule in the cell", cell("prod")+`?.querySelector('li[data-rule=approvals]')`)
	b.Eventually(20*time.Second, "dev may not approve own request", `document.querySelector('button[data-approve="shop/prod"]')?.disabled === true`)

	b.Do("sign out", chromedp.Click(chromedp.CSS(`.top-user button`)))
	signIn("ops-token-123")
	b.Eventually(20*time.Second, "the pending request", cell("prod")+`?.querySelector('[data-testid=request]')?.textContent.includes('requested by dev')`)
	b.Screenshot(filepath.Join(screenshotDir(t), "environments.png"), 1280, 640, true)
	b.Do("ops approves", chromedp.Click(chromedp.CSS(`button[data-approve="shop/prod"]`)))
	b.Eventually(20*time.Second, "promoted", cell("prod")+`?.querySelector('[data-testid=outcome]')?.textContent.includes('promoted into prod')`)
	waitApp(t, ops.InEnv("prod"), "shop", 60*time.Second, "v2 healthy in prod", healthyAt("v2"))
	b.Eventually(20*time.Second, "prod runs v2 on the board", cell("prod")+`?.querySelector('[data-testid=running]')?.textContent.includes('v2')`)
	running := func(env string) string {
		return Eval[string](b, cell(env)+`?.querySelector('[data-testid=running] code')?.title ?? ''`)
	}
	if running("prod") == "" || running("prod") != running("test") {
		t.Fatalf("prod runs bundle %q, test %q: not one bundle", running("prod"), running("test"))
	}

	b.Do("freeze prod", chromedp.Click(chromedp.CSS(`button[data-freeze=prod]`)))
	b.Do("say why", chromedp.SendKeys(chromedp.ID("freeze-prod"), "quarter-end close"), chromedp.Click(chromedp.CSS(`button[data-freeze-confirm=prod]`)))
	b.Eventually(20*time.Second, "prod frozen on the board", `document.querySelector('[data-stage=prod] [data-testid=frozen]')?.textContent.includes('quarter-end close')`)
	envs, err := ops.AppEnvironments(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if frozen := e.Frozen != nil && e.Frozen.Reason == "quarter-end close" && e.Frozen.By == "ops"; frozen != (e.Name == "prod") {
			t.Fatalf("after freezing prod on the board, %s frozen = %+v", e.Name, e.Frozen)
		}
	}
	b.Do("shop across environments", chromedp.Click(chromedp.CSS(`[data-board-app=shop] a`)))
	b.Eventually(20*time.Second, "the freeze on prod's card", `document.querySelector('[data-testid=environments] [data-env=prod] [data-testid=frozen]')?.textContent.includes('quarter-end close')`)
	b.NoConsoleErrors()

	// every press is audited: who, via the console, in which environment
	recs, err := ops.Audit(t.Context(), client.AuditQuery{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"dev request promotion": false, "ops approve": false, "ops freeze prod": false}
	for _, r := range recs {
		if r.Via != "console" || r.Env != "prod" {
			continue
		}
		for w := range want {
			who, what, _ := strings.Cut(w, " ")
			if r.Actor == who && strings.HasPrefix(r.Action, what) {
				want[w] = true
			}
		}
	}
	for w, seen := range want {
		if !seen {
			t.Errorf("no audit record %q via the console in prod; records: %+v", w, recs)
		}
	}
}
