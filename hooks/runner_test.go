package hooks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
)

func newRunner(t *testing.T) (*Runner, *MemoryStore) {
	t.Helper()
	store := NewMemoryStore()
	r, err := New(Config{Store: store, Env: "prod", Bundle: func(_ context.Context, rel *spec.Release) (string, error) { return "bundle-of-" + rel.Version, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, store
}

func ref(t *testing.T, doc string) *engine.SpecRef {
	t.Helper()
	rel, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return &engine.SpecRef{Spec: rel, Identity: rel.Version}
}

func waitState(t *testing.T, r *Runner, ref *engine.SpecRef, kind, want string) rollout.HookState {
	t.Helper()
	var st rollout.HookState
	testenv.Eventually(t, 20*time.Second, kind+" "+want, func() error {
		g, err := r.Gate(context.Background(), "shop", ref)
		if err != nil {
			return err
		}
		st = g.Hooks[kind]
		return testenv.Check(st.State == want, "state %q (%s)", st.State, st.Message)
	})
	return st
}

// A pre-release command runs once per bundle: the second Start of the
// same bundle (after it passed) runs nothing, and its outcome and output
// are recorded; the command sees the templates and the GRAYLANE_HOOK_*
// variables but not graylane's own GRAYLANE_* configuration.
func TestPreReleaseRunsOncePerBundle(t *testing.T) {
	testenv.IntegrationTest(t) // runs commands (sh)
	t.Setenv("GRAYLANE_HTTP_TOKEN", "s3cret")
	r, store := newRunner(t)
	dir := t.TempDir()
	count := filepath.Join(dir, "runs")
	doc := `app: shop
version: v2
backend: {type: registry}
hooks:
  preRelease:
    - name: migrate
      command: [sh, -c, 'echo run >> ` + count + `; echo "to {{.Version}} in {{.Env}} $GRAYLANE_HOOK_BUNDLE token=[$GRAYLANE_HTTP_TOKEN]"']
`
	rf := ref(t, doc)
	g, err := r.Gate(context.Background(), "shop", rf)
	if err != nil || g.Hooks[rollout.HookPreRelease].State != rollout.HookIdle {
		t.Fatalf("gate before any run: %+v %v", g, err)
	}
	if err := r.Start(context.Background(), "shop", rf, []string{rollout.HookPreRelease}); err != nil {
		t.Fatal(err)
	}
	waitState(t, r, rf, rollout.HookPreRelease, rollout.HookPassed)
	if err := r.Start(context.Background(), "shop", rf, []string{rollout.HookPreRelease}); err != nil {
		t.Fatal(err)
	}
	r.Close() // waits for anything the second Start could have started
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "run"); n != 1 {
		t.Fatalf("the hook ran %d times for one bundle, want once", n)
	}
	recs, _ := store.List(context.Background(), "shop")
	if len(recs) != 1 || recs[0].Bundle != "bundle-of-v2" || recs[0].Env != "prod" || recs[0].Schema != SchemaVersion {
		t.Fatalf("records %+v", recs)
	}
	o := recs[0].Kinds[rollout.HookPreRelease].Outcomes
	if len(o) != 1 || !o[0].OK || o[0].Status != "exit 0" || !strings.Contains(o[0].Output, "to v2 in prod bundle-of-v2 token=[]") {
		t.Fatalf("outcome %+v", o)
	}
}

// A failing gate hook records its status and output and stays failed
// until Retry; the retry skips the hooks that already passed.
func TestFailedHookWaitsForRetry(t *testing.T) {
	testenv.IntegrationTest(t) // runs commands (sh)
	r, _ := newRunner(t)
	dir := t.TempDir()
	flag := filepath.Join(dir, "ok")
	first := filepath.Join(dir, "first")
	rf := ref(t, `app: shop
version: v3
backend: {type: registry}
hooks:
  preRelease:
    - {name: first, command: [sh, -c, 'echo x >> `+first+`']}
    - {name: check, command: [sh, -c, 'test -f `+flag+` || { echo "schema v3 not ready"; exit 3; }']}
`)
	ctx := context.Background()
	if err := r.Start(ctx, "shop", rf, []string{rollout.HookPreRelease}); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, r, rf, rollout.HookPreRelease, rollout.HookFailed)
	if st.Message != "check: exit 3 (schema v3 not ready)" {
		t.Fatalf("message %q", st.Message)
	}
	if err := r.Start(ctx, "shop", rf, []string{rollout.HookPreRelease}); err != nil {
		t.Fatal(err)
	}
	if g, _ := r.Gate(ctx, "shop", rf); g.Hooks[rollout.HookPreRelease].State != rollout.HookFailed {
		t.Fatalf("a failed gate was started again without Retry: %+v", g.Hooks)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Retry(ctx, "shop", rf, []string{rollout.HookPreRelease}); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, "shop", rf, []string{rollout.HookPreRelease}); err != nil {
		t.Fatal(err)
	}
	waitState(t, r, rf, rollout.HookPreRelease, rollout.HookPassed)
	if b, _ := os.ReadFile(first); strings.Count(string(b), "x") != 1 {
		t.Fatalf("the hook that passed ran again on retry: %q", b)
	}
}

// HTTP hooks: a 2xx passes; the JSON payload names the release; a
// non-2xx fails with its status and body; post-release runs once.
func TestHTTPHooks(t *testing.T) {
	var confirm atomic.Int32
	var posts atomic.Int32
	var got Payload
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/confirm":
			_ = json.NewDecoder(req.Body).Decode(&got)
			if confirm.Add(1) == 1 {
				w.WriteHeader(http.StatusConflict)
				_, _ = w.Write([]byte("change ticket CHG-7 not approved"))
				return
			}
			_, _ = w.Write([]byte("ok"))
		case "/released":
			posts.Add(1)
		}
	}))
	defer srv.Close()
	r, _ := newRunner(t)
	rf := ref(t, `app: shop
version: v4
backend: {type: registry}
hooks:
  confirmPromotion: [{name: ticket, http: {url: "`+srv.URL+`/confirm", headers: {X-App: "{{.App}}"}}}]
  postRelease: [{name: tell, http: {url: "`+srv.URL+`/released"}}]
`)
	ctx := context.Background()
	if err := r.Start(ctx, "shop", rf, []string{rollout.HookConfirmPromotion}); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, r, rf, rollout.HookConfirmPromotion, rollout.HookFailed)
	if st.Message != "ticket: HTTP 409 (change ticket CHG-7 not approved)" || got.Kind != rollout.HookConfirmPromotion || got.Bundle != "bundle-of-v4" || got.Env != "prod" {
		t.Fatalf("message %q, payload %+v", st.Message, got)
	}
	_ = r.Retry(ctx, "shop", rf, []string{rollout.HookConfirmPromotion})
	_ = r.Start(ctx, "shop", rf, []string{rollout.HookConfirmPromotion})
	waitState(t, r, rf, rollout.HookConfirmPromotion, rollout.HookPassed)
	for i := 0; i < 3; i++ {
		if err := r.Released(ctx, "shop", rf); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "post-release sent", func() error {
		recs, _ := r.Records(ctx, "shop")
		return testenv.Check(len(recs) == 1 && recs[0].State(PostRelease) == rollout.HookPassed, "%+v", recs)
	})
	_ = r.Released(ctx, "shop", rf)
	r.Close()
	if n := posts.Load(); n != 1 {
		t.Fatalf("post-release sent %d times, want once", n)
	}
}

// A hook that outlives its timeout is killed (with its children) and
// fails with the timeout.
func TestHookTimeout(t *testing.T) {
	testenv.IntegrationTest(t) // runs commands (sh)
	r, _ := newRunner(t)
	rf := ref(t, `app: shop
version: v5
backend: {type: registry}
hooks:
  preRelease: [{name: slow, command: [sh, -c, 'sleep 30 & wait'], timeout: 200ms}]
`)
	if err := r.Start(context.Background(), "shop", rf, []string{rollout.HookPreRelease}); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, r, rf, rollout.HookPreRelease, rollout.HookFailed)
	if !strings.Contains(st.Message, "timeout after 200ms") {
		t.Fatalf("message %q", st.Message)
	}
}
