package promotion

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/enginetest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// fakeClock is the one clock of the world: engines and rules read it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// world is dev -> test -> prod on in-memory centres with real engines
// (instances ready at once) and the controller on embedded etcd.
type world struct {
	t      *testing.T
	ctx    context.Context
	clock  *fakeClock
	srcs   map[string]*memory.Source
	engs   map[string]*engine.Engine
	c      *Controller
	audits []audit.Record
	amu    sync.Mutex
	// analysis is what the fake release records say of an identity's
	// release per environment: "passed", "failed" or "" (no analysis)
	analysis map[string]string
}

func (w *world) setAnalysis(key, v string) {
	w.amu.Lock()
	w.analysis[key] = v
	w.amu.Unlock()
}

func newWorld(t *testing.T, adjust ...func(*environments.Set)) *world {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cli := etcdtest.Start(t).Client()
	set, err := environments.Parse([]any{
		map[string]any{"name": "dev"},
		map[string]any{"name": "test", "from": "dev", "soak": "10m", "autoPromote": true},
		map[string]any{"name": "pre", "from": "test"},
		map[string]any{"name": "prod", "from": "test", "approvals": 2, "windows": []any{"Mon-Fri 10:00-16:00 UTC"}, "requireAnalysis": []any{"pre"}},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range adjust {
		f(&set)
	}
	w := &world{t: t, ctx: ctx, clock: &fakeClock{now: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}, // Monday 09:00
		srcs: map[string]*memory.Source{}, engs: map[string]*engine.Engine{}, analysis: map[string]string{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	envs := map[string]*Env{}
	for i := range set.Envs {
		name := set.Envs[i].Name
		src := memory.New()
		be := enginetest.NewSignalling(1000)
		eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: be, Clock: w.clock, Env: name, Logger: log, Resync: 100 * time.Millisecond})
		be.Notify(eng.Trigger)
		go eng.Run(ctx)
		w.srcs[name], w.engs[name] = src, eng
		envs[name] = &Env{Config: &set.Envs[i], Engine: eng, Source: src, Writer: src, Bundle: bundleOf,
			Revisions: func(_ context.Context, app string) ([]records.Revision, error) { return w.revisions(name, app), nil }}
	}
	w.c, err = New(Config{Set: set, Envs: envs, Store: NewStore(cli, ""), Clock: w.clock, Logger: log, Resync: 50 * time.Millisecond,
		Audit: func(_ context.Context, r audit.Record) { w.amu.Lock(); w.audits = append(w.audits, r); w.amu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	for _, eng := range w.engs {
		for i := 0; i < 500; i++ {
			select {
			case <-eng.Synced():
				i = 500
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	go w.c.Run(ctx)
	if err := w.c.WaitFreezes(ctx); err != nil {
		t.Fatal(err)
	}
	go w.c.Lead(ctx)
	return w
}

// revisions plays the release records: one promoted revision per
// identity the environment ran Healthy, with the analysis verdicts the
// test set.
func (w *world) revisions(env, app string) []records.Revision {
	v, err := w.engs[env].App(context.Background(), app)
	if err != nil {
		return nil
	}
	r := records.Revision{App: app, Number: 2, Identity: v.Identity, Version: v.Identity, Outcome: records.Promoted, Strategy: "rolling", EndedAt: w.clock.Now()}
	w.amu.Lock()
	verdict := w.analysis[env+"/"+v.Identity]
	w.amu.Unlock()
	switch verdict {
	case "passed":
		r.Verdicts = []records.Verdict{{Check: "smoke", Runs: 3, OK: true}}
	case "failed":
		r.Outcome, r.Reason = records.Failed, "analysis failed: smoke: HTTP 500"
	}
	return []records.Revision{r}
}

func bundleOf(ctx context.Context, rel *spec.Release) (environments.Bundle, string, error) {
	if rel.Config == nil {
		return environments.NewBundle(rel.App, rel.Version, nil), "", nil
	}
	base, err := configrelease.ResolveBase(ctx, rel.App, rel.Config, nil)
	if err != nil {
		return environments.Bundle{}, "", err
	}
	eff, err := configrelease.Resolve(ctx, rel.App, rel.Config, nil)
	return environments.NewBundle(rel.App, rel.Version, base.Files), eff.Digest, err
}

func doc(app, version, greeting string, replicas int, overlay string) string {
	s := fmt.Sprintf(`app: %s
version: %s
replicas: %d
strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0}
backend: {type: registry}
config:
  files: [{name: app.yaml, content: "greeting: %s\n"}]
  targets: [{etcd: {key: "/config/{{.App}}/{{.File}}"}}]
`, app, version, replicas, greeting)
	if overlay != "" {
		s += "  overlay: {app.yaml: " + overlay + "}\n"
	}
	return s
}

func (w *world) put(env, app, d string) { w.srcs[env].Set(app, []byte(d)) }

func (w *world) healthyApp(env, app, version string) { w.t.Helper(); w.healthy(env, app, version) }

func (w *world) healthy(env, app, version string) {
	w.t.Helper()
	testenv.Eventually(w.t, 20*time.Second, app+" "+version+" Healthy in "+env, func() error {
		v, err := w.engs[env].App(w.ctx, app)
		if err != nil {
			return err
		}
		if v.Spec == nil {
			return fmt.Errorf("no spec in force yet")
		}
		return testenv.Check(v.Status.Phase == rollout.Healthy && v.Status.StableVersion == version && v.Spec.Version == version, "%s %s (desired %s)", v.Status.Phase, v.Status.StableVersion, v.Spec.Version)
	})
}

// stored returns the document env's centre holds for app.
func (w *world) stored(env, app string) *spec.Release {
	w.t.Helper()
	en, err := w.srcs[env].Get(w.ctx, app)
	if err != nil {
		w.t.Fatal(err)
	}
	rel, err := spec.Parse(en.Data)
	if err != nil {
		w.t.Fatal(err)
	}
	return rel
}

var (
	alice = Caller{Name: "alice", Via: ViaAPI, CanRelease: true}
	bob   = Caller{Name: "bob", Via: ViaAPI, CanRelease: true}
	carol = Caller{Name: "carol", Via: ViaAPI, CanRelease: true}
	dev   = Caller{Name: "dev-dan", Via: ViaAPI}
)

func (w *world) promote(env string, who Caller) Result {
	w.t.Helper()
	r, err := w.c.Promote(w.ctx, env, "shop", "", who)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) approve(env string, who Caller) Result {
	w.t.Helper()
	r, err := w.c.Approve(w.ctx, env, "shop", "", who)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// expectUnchanged fails unless env's document of shop is still version.
func (w *world) expectUnchanged(env, version string) {
	w.t.Helper()
	if got := w.stored(env, "shop").Version; got != version {
		w.t.Fatalf("%s's document changed: version %s, want %s", env, got, version)
	}
}

func TestPromotionThroughEnvironments(t *testing.T) {
	testenv.IntegrationTest(t)
	w := newWorld(t)
	w.put("dev", "shop", doc("shop", "v1", "hello", 1, ""))
	w.put("test", "shop", doc("shop", "v1", "hello", 2, ""))
	w.put("pre", "shop", doc("shop", "v1", "hello", 1, ""))
	w.put("prod", "shop", doc("shop", "v1", "hello", 4, `{db: prod}`))
	for _, e := range []string{"dev", "test", "pre", "prod"} {
		w.healthy(e, "shop", "v1")
	}

	// dev gets v2 with new config; test takes it by itself after its soak
	w.put("dev", "shop", doc("shop", "v2", "hi from v2", 1, ""))
	w.healthy("dev", "shop", "v2")
	w.c.Kick()
	if r := w.promote("test", alice); r.Outcome != Pending || r.Rule != environments.RuleSoak {
		t.Fatalf("promote into test before the soak: %+v", r)
	}
	w.expectUnchanged("test", "v1")
	w.clock.Add(10 * time.Minute)
	w.c.Kick()
	w.healthy("test", "shop", "v2")
	rel := w.stored("test", "shop")
	if rel.ReplicaCount() != 2 || *rel.Config.Files[0].Content != "greeting: hi from v2\n" {
		t.Fatalf("test's document after the promotion: replicas %d, file %q", rel.ReplicaCount(), *rel.Config.Files[0].Content)
	}

	// prod: pre-production gate, approvals, window
	w.clock.Add(time.Hour) // Monday 10:10 UTC, inside the window
	r := w.promote("prod", alice)
	if r.Outcome != Refused || r.Rule != environments.RulePreProduction {
		t.Fatalf("prod before pre ran v2: %+v", r)
	}
	w.expectUnchanged("prod", "v1")
	if r := w.promote("pre", alice); r.Outcome != Promoted {
		t.Fatalf("promote into pre: %+v", r)
	}
	w.healthy("pre", "shop", "v2")
	if r := w.promote("prod", alice); r.Rule != environments.RulePreProduction || !strings.Contains(r.Reason, "has not passed analysis in pre") {
		t.Fatalf("pre ran v2 without analysis: %+v", r)
	}
	// pre's release record says its analysis passed (a new release of the same bundle there)
	w.setAnalysis("pre/v2", "passed")
	w.put("pre", "shop", doc("shop", "v1", "hello", 1, ""))
	w.healthy("pre", "shop", "v1")
	if r := w.promote("pre", alice); r.Outcome != Promoted {
		t.Fatalf("promote into pre again: %+v", r)
	}
	w.healthy("pre", "shop", "v2")

	r = w.promote("prod", alice)
	if r.Outcome != Pending || r.Rule != environments.RuleApprovals || !strings.Contains(r.Reason, "0 of 2") {
		t.Fatalf("prod without approvals: %+v", r)
	}
	if r := w.approve("prod", alice); r.Outcome != Refused || r.Rule != environments.RuleSelfApproval {
		t.Fatalf("self-approval: %+v", r)
	}
	if r := w.approve("prod", bob); r.Outcome != Approved || r.Verdict.Rule() != environments.RuleApprovals || !strings.Contains(r.Reason, "1 of 2") {
		t.Fatalf("first approval: %+v", r)
	}
	w.expectUnchanged("prod", "v1")
	// outside the window the second approval does not promote
	w.clock.Add(8 * time.Hour) // 18:10
	if r := w.approve("prod", carol); r.Outcome != Approved || r.Rule != environments.RuleWindow {
		t.Fatalf("second approval outside the window: %+v", r)
	}
	w.expectUnchanged("prod", "v1")
	// freeze: even inside the window
	w.clock.Add(16 * time.Hour) // Tuesday 10:10
	if _, err := w.c.Freeze(w.ctx, "prod", "quarter close", "ops", ViaAPI); err != nil {
		t.Fatal(err)
	}
	if r := w.promote("prod", alice); r.Outcome != Refused || r.Rule != environments.RuleFrozen || !strings.Contains(r.Reason, "quarter close") {
		t.Fatalf("frozen: %+v", r)
	}
	w.expectUnchanged("prod", "v1")
	if err := w.c.Unfreeze(w.ctx, "prod", "ops", ViaAPI); err != nil {
		t.Fatal(err)
	}
	// approvals expire after 24h: bob's (Monday 10:10) is gone by Tuesday 10:10
	w.c.Kick()
	testenv.Eventually(t, 20*time.Second, "the pending request waits for approvals again", func() error {
		req, _, err := w.c.cfg.Store.Request(w.ctx, "prod", "shop")
		if err != nil {
			return err
		}
		return testenv.Check(req.State == environments.Pending && req.Rule == environments.RuleApprovals, "%s %s: %s", req.State, req.Rule, req.Reason)
	})
	if r := w.approve("prod", bob); r.Outcome != Promoted {
		t.Fatalf("bob approves again within the window: %+v", r)
	}
	w.healthy("prod", "shop", "v2")
	prod := w.stored("prod", "shop")
	if prod.ReplicaCount() != 4 || *prod.Config.Files[0].Content != "greeting: hi from v2\n" || string(prod.Config.Overlay["app.yaml"]) != `{"db":"prod"}` {
		t.Fatalf("prod's document: replicas %d, file %q, overlay %s", prod.ReplicaCount(), *prod.Config.Files[0].Content, prod.Config.Overlay["app.yaml"])
	}
	ov, err := w.c.Overview(w.ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	byEnv := map[string]AppEnv{}
	for _, e := range ov {
		byEnv[e.Name] = e
	}
	if byEnv["prod"].Bundle == nil || byEnv["prod"].Bundle.Bundle != byEnv["test"].Bundle.Bundle {
		t.Fatalf("prod and test do not run one bundle: %+v / %+v", byEnv["prod"].Bundle, byEnv["test"].Bundle)
	}
	if byEnv["prod"].Bundle.ConfigDigest == byEnv["test"].Bundle.ConfigDigest {
		t.Fatal("prod's effective config digest equals test's although prod has an overlay")
	}
	w.amu.Lock()
	defer w.amu.Unlock()
	var promoted []string
	for _, a := range w.audits {
		if strings.HasPrefix(a.Action, "promote ") && a.Outcome == audit.Allowed {
			promoted = append(promoted, a.Env+":"+a.Actor)
		}
	}
	// alice's request into test (made before the soak) was carried out once it soaked
	if got := strings.Join(promoted, ","); got != "test:alice,pre:alice,pre:alice,prod:alice" {
		t.Fatalf("audited promotions %s", got)
	}
}

// A newer bundle in the source supersedes a pending request: its
// approvals no longer count for the new bundle.
func TestNewerBundleInvalidatesApprovals(t *testing.T) {
	testenv.IntegrationTest(t)
	w := newWorld(t, func(s *environments.Set) { s.Envs[3].RequireAnalysis = nil })
	for _, e := range []string{"dev", "test", "pre", "prod"} {
		w.put(e, "shop", doc("shop", "v1", "hello", 1, ""))
	}
	w.clock.Add(time.Hour) // 10:00
	w.put("test", "shop", doc("shop", "v2", "two", 1, ""))
	w.healthy("test", "shop", "v2")
	if r := w.promote("prod", alice); r.Rule != environments.RuleApprovals {
		t.Fatalf("%+v", r)
	}
	w.approve("prod", bob)
	w.put("test", "shop", doc("shop", "v3", "three", 1, ""))
	w.healthy("test", "shop", "v3")
	w.c.Kick()
	testenv.Eventually(t, 20*time.Second, "the request for v2 superseded", func() error {
		req, _, err := w.c.cfg.Store.Request(w.ctx, "prod", "shop")
		if err != nil {
			return err
		}
		return testenv.Check(req.State == environments.Superseded, "%s: %s", req.State, req.Reason)
	})
	if r := w.approve("prod", carol); r.Outcome != Refused || r.Rule != environments.RuleNoRequest {
		t.Fatalf("approving a superseded request: %+v", r)
	}
	r := w.promote("prod", alice)
	if r.Outcome != Pending || r.Rule != environments.RuleApprovals || !strings.Contains(r.Reason, "0 of 2") || r.Request.Version != "v3" {
		t.Fatalf("promote v3: %+v", r)
	}
	// a developer may only request: the request needs an approval even
	// where the environment asks for none (pre)
	if r := w.promote("pre", dev); r.Outcome != Pending || !strings.Contains(r.Reason, "0 of 1") {
		t.Fatalf("request by a developer: %+v", r)
	}
	w.expectUnchanged("pre", "v1")
	if r := w.approve("pre", bob); r.Outcome != Promoted {
		t.Fatalf("approved developer request: %+v", r)
	}
}

// Upstream analysis failure refuses; nothing changes.
func TestAnalysisFailedUpstreamRefuses(t *testing.T) {
	testenv.IntegrationTest(t)
	w := newWorld(t)
	for _, e := range []string{"dev", "test", "pre", "prod"} {
		w.put(e, "shop", doc("shop", "v1", "hello", 1, ""))
		w.healthy(e, "shop", "v1")
	}
	// v4 pauses in test; its analysis fails there (the release record
	// says so) and it is aborted
	w.setAnalysis("test/v4", "failed")
	w.put("test", "shop", strings.Replace(doc("shop", "v4", "four", 1, ""), "strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0}", "strategy: {steps: [{setWeight: 50}, {pause: {}}]}", 1))
	testenv.Eventually(t, 20*time.Second, "v4 paused in test", func() error {
		v, _ := w.engs["test"].App(w.ctx, "shop")
		return testenv.Check(v.Status.CanaryVersion == "v4" && v.Status.Phase == rollout.Paused, "%+v", v.Status.Status)
	})
	if r := w.promote("pre", alice); r.Outcome != Refused || r.Rule != environments.RuleSoak || !strings.Contains(r.Reason, "still rolling out in test") {
		t.Fatalf("promote while v4 rolls out in test: %+v", r)
	}
	if _, err := w.engs["test"].Command(w.ctx, "shop", rollout.CmdAbort); err != nil {
		t.Fatal(err)
	}
	r := w.promote("pre", alice)
	if r.Outcome != Refused || r.Rule != environments.RuleAnalysis || !strings.Contains(r.Reason, "analysis failed") {
		t.Fatalf("%+v", r)
	}
	w.expectUnchanged("pre", "v1")
}
