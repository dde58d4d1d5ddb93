package browsertest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/graylane/graylane/testsupport/testenv"
)

// TestConsoleRevisionsStatsAndAudit: the app page lists the revisions,
// each with a Rollback button; rolling back to revision 1 from the console
// writes it to the centre and the app returns to v1 without steps; the
// statistics and audit pages show the releases and the console's action.
func TestConsoleRevisionsStatsAndAudit(t *testing.T) {
	testenv.IntegrationTest(t)
	b := StartBrowser(t)
	g := startGraylane(t, map[string]any{"http": map[string]any{"tokens": []map[string]any{
		{"name": "ops", "token": "ops-token-123", "role": "write"},
	}}})
	sys := NewDeploySystem(t)
	c := g.Client().WithToken("ops-token-123")
	for _, v := range []string{"v1", "v2"} {
		if err := c.PutSpec(t.Context(), "shop", []byte(sys.Spec("shop", v, 2, `[{setWeight: 50}]`))); err != nil {
			t.Fatal(err)
		}
		waitApp(t, c, "shop", 60*time.Second, v+" healthy", healthyAt(v))
	}

	b.Do("open the app", chromedp.Navigate(g.APIURL+"/apps/shop"))
	b.Eventually(10*time.Second, "the sign-in page", `document.querySelector('h1')?.textContent === 'Sign in'`)
	b.Do("sign in", chromedp.SendKeys(chromedp.ID("token"), "ops-token-123"), chromedp.KeyEvent("\r"))
	b.Eventually(20*time.Second, "two revisions", `document.querySelectorAll('#revisions tr[data-revision]').length === 2`)
	if why := Eval[string](b, `document.querySelector('button[data-rollback="2"]').title`); why != "this revision is serving now" {
		t.Fatalf("the serving revision's button says %q", why)
	}
	b.Screenshot(filepath.Join(screenshotDir(t), "revisions.png"), 1280, 900, true)
	b.Do("roll back to #1", chromedp.Click(chromedp.CSS(`button[data-rollback="1"]`)))
	b.Do("confirm", chromedp.Click(chromedp.CSS(`button[data-confirm=rollback-to]`)))
	waitApp(t, c, "shop", 60*time.Second, "v1 healthy again", healthyAt("v1"))
	b.Eventually(20*time.Second, "revision 3, a rollback to #1", `[...document.querySelectorAll('#revisions tr[data-revision="3"] td')].some(td => td.textContent.includes('rollback to #1'))`)
	revs, err := c.Revisions(t.Context(), "shop")
	if err != nil || len(revs) != 3 || revs[0].RollbackTo != 1 || !revs[0].Fast || revs[0].Cause.Via != "console" || revs[0].Cause.Actor != "ops" {
		t.Fatalf("revisions after the console's rollback: %v %+v", err, revs)
	}

	// the Set version dialog previews the release with a dry-run, writing nothing
	b.Do("set version", chromedp.Click(chromedp.CSS(`[data-action=set-version]`)))
	b.Do("type v3, preview", chromedp.SendKeys(chromedp.ID("new-version"), "v3"), chromedp.Click(chromedp.CSS(`button[data-preview]`)))
	b.Eventually(20*time.Second, "the plan of the dry-run", `[...document.querySelectorAll('[data-testid=dry-run] tbody tr')].some(tr => tr.textContent.includes('v3 100%'))`)
	if v, err := c.App(t.Context(), "shop"); err != nil || v.Spec.Version != "v1" {
		t.Fatalf("the preview changed the desired version: %v %+v", err, v.Spec)
	}
	b.Do("cancel", chromedp.Click(chromedp.CSS(`dialog[open] .dialog-buttons button.btn:not(.btn-primary):not([data-preview])`)))

	b.Do("statistics", chromedp.Click(chromedp.CSS(`.top-nav a[href="/stats"]`)))
	b.Eventually(10*time.Second, "shop's 7-day row", `document.querySelector('[data-testid=stats] tr[data-app=shop][data-window="7d"]')?.children[2]?.textContent === '3'`)
	b.Do("audit log", chromedp.Click(chromedp.CSS(`.top-nav a[href="/audit"]`)))
	b.Eventually(10*time.Second, "the console's rollback in the audit log", `[...document.querySelectorAll('[data-testid=audit] tr')].some(tr => tr.textContent.includes('rollback to revision 1') && tr.textContent.includes('ops') && tr.textContent.includes('console'))`)
	b.Screenshot(filepath.Join(screenshotDir(t), "audit.png"), 1280, 800, false)
	b.NoConsoleErrors()
}
