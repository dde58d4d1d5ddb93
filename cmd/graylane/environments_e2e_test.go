package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"github.com/spf13/viper"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/promotion"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// offsetClock is the one clock of an in-process graylane: real time plus
// an offset the test moves forward, so soaks and windows pass without
// sleeping while rollouts, probes and analysis run in real time.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// envWorld is one graylane serving dev and test (two namespaces of a real
// Nacos-protocol server, Polaris) and prod (the Apollo test server), with
// demo processes in each environment reading their config from their
// environment's centre.
type envWorld struct {
	t      *testing.T
	ctx    context.Context
	clock  *offsetClock
	pol    *polaris.Server
	apollo *apolloserver.Server
	bin    string
	api    string
	ctl    *promotion.Controller
	proxy  map[string]int
	// failing lists the versions the analysis check fails
	fmu     sync.Mutex
	failing map[string]bool
	check   *httptest.Server
	nacos   map[string]config_client.IConfigClient
}

// the tokens of the test: alice and bob are admins,
// carol approves, dan is a developer (release in dev and test, only
// request in prod), ci is scoped to dev.
var envTokens = map[string]string{"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret", "dan": "dan-secret", "ci": "ci-secret-1"}

func newEnvWorld(t *testing.T) *envWorld {
	t.Helper()
	w := &envWorld{t: t, clock: &offsetClock{}, proxy: map[string]int{}, failing: map[string]bool{}, nacos: map[string]config_client.IConfigClient{}}
	// Monday 2026-12-07 09:00 in Shanghai: an hour before prod's window opens
	w.clock.off.Store(int64(time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC).Sub(time.Now())))
	w.pol = polaris.Start(t)
	w.apollo = apolloserver.New(apolloserver.Options{LongPollTimeout: 5 * time.Second, Envs: []string{"PRO"}})
	if err := w.apollo.Start(); err != nil {
		testenv.Unavailable(t, "apollo test server: %v", err)
	}
	t.Cleanup(w.apollo.Close)
	for _, err := range []error{w.apollo.CreateApp("graylane", ""), w.apollo.CreateApp("shop", ""), w.apollo.CreateToken("prod-token")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ns, err := w.apollo.CreateNamespace("graylane", "graylane-releases", "properties")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.apollo.CreateNamespace("shop", "app", apolloserver.FormatYAML); err != nil {
		t.Fatal(err)
	}
	// docs/apollo.md: the release namespace is published once in the portal
	if _, err := w.apollo.Publish("graylane", "default", ns, "create the release namespace"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{w.apollo.GrantNamespace("prod-token", "graylane", ns, ""), w.apollo.GrantApp("prod-token", "shop")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.check = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		v := strings.TrimPrefix(r.URL.Path, "/check/")
		w.fmu.Lock()
		fail := w.failing[spec.CodeVersion(v)]
		w.fmu.Unlock()
		if fail {
			http.Error(rw, "error rate 7% over 1%", http.StatusInternalServerError)
			return
		}
		_, _ = rw.Write([]byte("ok"))
	}))
	t.Cleanup(w.check.Close)
	w.bin = graylanetest.Binaries(t)
	for _, e := range []string{"dev", "test", "prod"} {
		w.proxy[e] = testenv.FreePort(t)
	}
	httpPort := testenv.FreePort(t)
	var tokens []string
	for _, line := range []string{
		`{name: alice, token: alice-secret, role: admin}`,
		`{name: bob, token: bob-secret, role: admin}`,
		`{name: carol, token: carol-secret, role: approve}`,
		`{name: dan, token: dan-secret, environments: {dev: release, test: release, prod: request}}`,
		`{name: ci, token: ci-secret-1, environments: {dev: release}}`,
	} {
		tokens = append(tokens, "    - "+line)
	}
	cfg := fmt.Sprintf(`http:
  addr: 127.0.0.1:%d
  tokens:
%s
data: {dir: %s}
log: {level: info}
etcd: {embedded: {clientAddr: 127.0.0.1:%d, peerAddr: 127.0.0.1:%d}}
engine: {resync: 1s}
process: {stopOnExit: true}
proxy: {mode: embedded}  # graylane runs in this test binary, which has no proxy command
config: {driftInterval: 1s}
nacos: {servers: [%s], group: GRAYLANE_RELEASES}
apollo: {configService: %s, portal: %s, token: prod-token, appId: graylane, namespace: %s, operator: apollo, probeInterval: 1s, startupGrace: 1s}
environments:
  - {name: dev,  source: {type: nacos, namespace: dev}}
  - {name: test, source: {type: nacos, namespace: test}, from: dev, soak: 10m, autoPromote: true}
  - name: prod
    source: {type: apollo, env: PRO}
    from: test
    soak: 30m
    approvals: 2
    windows: ["Mon-Fri 10:00-16:00 Asia/Shanghai"]
    requireAnalysis: [test]
`, httpPort, strings.Join(tokens, "\n"), t.TempDir(), testenv.FreePort(t), testenv.FreePort(t), w.pol.NacosAddr(), w.apollo.URL(), w.apollo.PortalURL(), ns)
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(cfg)); err != nil {
		t.Fatal(err)
	}
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.ctx = ctx
	serving, ctlCh := make(chan string, 1), make(chan *promotion.Controller, 1)
	done := make(chan error, 1)
	go func() { done <- serveWith(ctx, v, serveOptions{Clock: w.clock, Serving: serving, Controller: ctlCh}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("graylane: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("graylane did not stop within 60s")
		}
	})
	select {
	case w.ctl = <-ctlCh:
	case err := <-done:
		t.Fatalf("graylane exited at start: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("graylane did not start")
	}
	select {
	case addr := <-serving:
		w.api = "http://" + addr
	case err := <-done:
		t.Fatalf("graylane exited at start: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("graylane did not start serving")
	}
	testenv.Eventually(t, 60*time.Second, "graylane ready", func() error {
		resp, err := http.Get(w.api + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return testenv.Check(resp.StatusCode == 200, "%s", resp.Status)
	})
	return w
}

// as is the API client of a token (in env, "" for the routes across
// environments).
func (w *envWorld) as(who, env string) *client.Client {
	return client.New(w.api).WithToken(envTokens[who]).InEnv(env)
}

// doc is env's own release document of shop at version with a config
// file of greeting.
func (w *envWorld) doc(env, version, greeting string) string {
	common := fmt.Sprintf(`app: shop
version: %s
replicas: 1
backend:
  type: process
  process:
    command: [%s, "--version={{.Version}}", "--addr={{.Addr}}", "--app=shop", "--config-files=app.yaml", "--config-interval=300ms", %%s]
    proxy: 127.0.0.1:%d
    stopGracePeriod: 2s
health: {path: /healthz, interval: 200ms, timeout: 1s}
config:
  files:
    - name: app.yaml
      content: |
        greeting: %s
        db: {url: "jdbc:mysql://db/shop"}
`, version, filepath.Join(w.bin, "demoapp"), w.proxy[env], greeting)
	switch env {
	case "dev":
		return fmt.Sprintf(common, fmt.Sprintf(`"--config-nacos=%s", "--config-nacos-namespace=dev"`, w.pol.NacosAddr())) +
			"  targets: [{nacos: {group: DEFAULT_GROUP, dataId: \"{{.App}}-{{.File}}\"}}]\n" +
			"strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0, progressDeadline: 2h}\n"
	case "test":
		return fmt.Sprintf(common, fmt.Sprintf(`"--config-nacos=%s", "--config-nacos-namespace=test"`, w.pol.NacosAddr())) +
			"  targets: [{nacos: {group: DEFAULT_GROUP, dataId: \"{{.App}}-{{.File}}\"}}]\n" +
			fmt.Sprintf(`strategy:
  type: canary
  steps: [{setWeight: 50}, {analysis: {count: 2}}, {setWeight: 100}]
  progressDeadline: 2h
  scaleDownDelay: 1s
  analysis:
    interval: 1s
    checks: [{name: smoke, http: {url: "%s/check/{{.Version}}"}}]
`, w.check.URL)
	default:
		return fmt.Sprintf(common, fmt.Sprintf(`"--config-apollo=%s", "--config-apollo-app=shop"`, w.apollo.URL())) +
			"  targets: [{apollo: {appId: shop, namespace: \"{{.File}}\"}}]\n" +
			"  overlay:\n    app.yaml: {db: {url: \"jdbc:mysql://prod-db/shop\"}}\n" +
			"strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0, progressDeadline: 2h}\n"
	}
}

// bundleContent is the bundle's app.yaml for greeting (as every doc writes it).
func bundleContent(greeting string) string {
	return "greeting: " + greeting + "\ndb: {url: \"jdbc:mysql://db/shop\"}\n"
}

func (w *envWorld) put(env, version, greeting string) {
	w.t.Helper()
	if err := w.as("alice", env).PutSpec(w.ctx, "shop", []byte(w.doc(env, version, greeting))); err != nil {
		w.t.Fatalf("put shop %s in %s: %v", version, env, err)
	}
}

// healthy waits until shop runs version Healthy in env.
func (w *envWorld) healthy(env, version string) {
	w.t.Helper()
	c := w.as("alice", env)
	testenv.Eventually(w.t, 3*time.Minute, "shop "+version+" Healthy in "+env, func() error {
		v, err := c.App(w.ctx, "shop")
		if err != nil {
			return err
		}
		return testenv.Check(v.Status.Phase == rollout.Healthy && spec.CodeVersion(v.Status.StableVersion) == version && v.Spec != nil && v.Spec.Version == version,
			"%s stable %s (%s)", v.Status.Phase, v.Status.StableVersion, v.Status.Message)
	})
}

// document reads env's release document of shop (as its centre holds it).
func (w *envWorld) document(env string) *spec.Release {
	w.t.Helper()
	d, err := w.as("alice", env).Spec(w.ctx, "shop")
	if err != nil {
		w.t.Fatal(err)
	}
	rel, err := spec.Parse([]byte(d.Document))
	if err != nil {
		w.t.Fatal(err)
	}
	return rel
}

// nacosGet reads a dataId of namespace ns with Nacos' own client.
func (w *envWorld) nacosGet(ns, dataID string) string {
	w.t.Helper()
	c := w.nacos[ns]
	if c == nil {
		dir := w.t.TempDir()
		var err error
		c, err = clients.NewConfigClient(vo.NacosClientParam{
			ClientConfig:  &constant.ClientConfig{NamespaceId: ns, TimeoutMs: 5000, CacheDir: dir, LogDir: dir, LogLevel: "warn", NotLoadCacheAtStart: true, DisableUseSnapShot: true},
			ServerConfigs: []constant.ServerConfig{{IpAddr: w.pol.Host(), Port: uint64(w.pol.Port())}},
		})
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(c.CloseClient)
		w.nacos[ns] = c
	}
	var got string
	testenv.Eventually(w.t, 10*time.Second, "nacos get "+ns+"/"+dataID, func() error {
		var err error
		got, err = c.GetConfig(vo.ConfigParam{DataId: dataID, Group: "DEFAULT_GROUP"})
		return err
	})
	return got
}

// apolloContent reads a yaml namespace's content from the Apollo config
// service, as a client does.
func (w *envWorld) apolloContent(app, ns string) string {
	w.t.Helper()
	resp, err := http.Get(w.apollo.URL() + "configs/" + app + "/default/" + ns)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var dto struct {
		Configurations map[string]string `json:"configurations"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dto); err != nil {
		w.t.Fatal(err)
	}
	return dto.Configurations["content"]
}

// refused checks a promotion or approval answer names rule, and that
// prod still has version in its document and runs it Healthy.
func (w *envWorld) refused(what string, r promotion.Result, err error, outcome, rule, says string) {
	w.t.Helper()
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
	if r.Outcome != outcome || r.Rule != rule || !strings.Contains(r.Reason, says) {
		w.t.Fatalf("%s: %s rule %q: %s; want %s by rule %s saying %q", what, r.Outcome, r.Rule, r.Reason, outcome, rule, says)
	}
}

func (w *envWorld) prodUnchanged(version string) {
	w.t.Helper()
	if got := w.document("prod").Version; got != version {
		w.t.Fatalf("prod's document changed to %s, want %s", got, version)
	}
}

// scoped checks a call is refused 403 naming rule.
func scoped(t *testing.T, what string, err error, rule string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusForbidden || e.Rule != rule {
		t.Fatalf("%s: %v, want 403 rule %s", what, err, rule)
	}
}

// request returns the latest promotion request of shop into prod.
func (w *envWorld) request() *environments.Request {
	w.t.Helper()
	ov, err := w.as("alice", "").AppEnvironments(w.ctx, "shop")
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range ov {
		if e.Name == "prod" {
			return e.Request
		}
	}
	return nil
}

func digestOf(c string) string {
	sum, _ := configwire.FileDigest("yaml", []byte(c))
	return configwire.BundleDigest([]configwire.File{{Name: "app.yaml", Format: "yaml", SHA256: sum}})
}

func TestEndToEndEnvironmentsPromotion(t *testing.T) {
	testenv.IntegrationTest(t)
	w := newEnvWorld(t)
	ctx := w.ctx
	for _, e := range []string{"dev", "test", "prod"} {
		w.put(e, "v1", "hello v1")
	}
	for _, e := range []string{"dev", "test", "prod"} {
		w.healthy(e, "v1")
	}

	// dev gets a bundle: code v2 and new config
	w.put("dev", "v2", "hello v2")
	w.healthy("dev", "v2")
	// test takes it by itself once it soaked 10m in dev
	if v := w.document("test").Version; v != "v1" {
		t.Fatalf("test promoted before the soak: %s", v)
	}
	w.clock.Advance(10 * time.Minute) // 09:10
	w.ctl.Kick()
	w.healthy("test", "v2")
	if got := w.nacosGet("test", "shop-app.yaml"); got != bundleContent("hello v2") {
		t.Fatalf("test's config in Nacos (namespace test): %q, want dev's bytes %q", got, bundleContent("hello v2"))
	}
	if got := w.nacosGet("dev", "shop-app.yaml"); got != bundleContent("hello v2") {
		t.Fatalf("dev's config in Nacos (namespace dev): %q", got)
	}

	alice, bob, carol := w.as("alice", ""), w.as("bob", ""), w.as("carol", "")
	// not soaked: test ran v2 for minutes, prod needs 30m (a pending
	// request is recorded; prod changes nothing)
	r, err := alice.PromoteEnv(ctx, "shop", "prod", "")
	w.refused("promote before the soak", r, err, promotion.Pending, environments.RuleSoak, "prod needs 30m0s")
	w.prodUnchanged("v1")
	// a token scoped to dev, and a developer's token that may only request in prod
	_, err = w.as("ci", "").PromoteEnv(ctx, "shop", "prod", "")
	scoped(t, "ci promotes into prod", err, "scope")
	_, err = w.as("dan", "").ApproveEnv(ctx, "shop", "prod", "")
	scoped(t, "dan approves in prod", err, "role")
	w.prodUnchanged("v1")

	w.clock.Advance(30 * time.Minute) // 09:40, soaked, before the window
	r, err = alice.PromoteEnv(ctx, "shop", "prod", "")
	w.refused("promote without approvals", r, err, promotion.Pending, environments.RuleApprovals, "0 of 2 approvals")
	if !r.Verdict.Refuses(environments.RuleWindow) {
		t.Fatalf("09:40 in Shanghai is outside prod's window, but the verdict says %v", r.Verdict)
	}
	r, err = alice.ApproveEnv(ctx, "shop", "prod", "")
	w.refused("alice approves her own request", r, err, promotion.Refused, environments.RuleSelfApproval, "alice requested this promotion")
	r, err = bob.ApproveEnv(ctx, "shop", "prod", "")
	w.refused("bob approves", r, err, promotion.Approved, environments.RuleApprovals, "1 of 2 approvals")
	w.prodUnchanged("v1")
	r, err = carol.ApproveEnv(ctx, "shop", "prod", "")
	w.refused("carol approves outside the window", r, err, promotion.Approved, environments.RuleWindow, "outside the windows of prod")
	w.prodUnchanged("v1")

	// frozen: even once the window opens
	if _, err := bob.Freeze(ctx, "prod", "payment audit until 14:00"); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(30 * time.Minute) // 10:10, inside the window
	w.ctl.Kick()
	testenv.Eventually(t, 30*time.Second, "the pending request held by the freeze", func() error {
		req := w.request()
		return testenv.Check(req != nil && req.State == environments.Pending && req.Rule == environments.RuleFrozen, "%+v", req)
	})
	r, err = alice.PromoteEnv(ctx, "shop", "prod", "")
	w.refused("promote into a frozen prod", r, err, promotion.Refused, environments.RuleFrozen, "payment audit until 14:00")
	w.prodUnchanged("v1")
	list, err := alice.Environments(ctx)
	if err != nil || list[2].Frozen == nil || list[2].Frozen.Reason != "payment audit until 14:00" {
		t.Fatalf("GET /environments does not show prod's freeze: %+v %v", list, err)
	}
	if err := bob.Unfreeze(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	// the pending request now passes every rule: graylane carries it out
	w.healthy("prod", "v2")
	prod, test := w.document("prod"), w.document("test")
	if *prod.Config.Files[0].Content != *test.Config.Files[0].Content || prod.ReplicaCount() != 1 || len(prod.Config.Overlay) != 1 {
		t.Fatalf("prod's document: file %q (test's %q), overlay %v", *prod.Config.Files[0].Content, *test.Config.Files[0].Content, prod.Config.Overlay)
	}
	effective, err := spec.ApplyOverlay("yaml", []byte(bundleContent("hello v2")), prod.Config.Overlay["app.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(effective), "prod-db") || !strings.Contains(string(effective), "greeting: hello v2") {
		t.Fatalf("effective prod config %q", effective)
	}
	// Apollo holds the bundle's bytes with prod's overlay, read through the
	// config service protocol agollo speaks. (agollo itself is not started
	// in this process: graylane runs in-process here with its own agollo
	// client, and agollo keeps its server list in package globals that two
	// clients in one process race on (the race detector caught it). Prod's
	// instances read the config through the same protocol in their own
	// processes (sdk/config); their checksums are checked below.)
	if got := w.apolloContent("shop", "app.yaml"); got != string(effective) {
		t.Fatalf("Apollo holds %q for prod, want the bundle with prod's overlay %q", got, effective)
	}
	// the instances report what they loaded: test the bundle's digest, prod the effective one
	ov, err := alice.AppEnvironments(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	byEnv := map[string]promotion.AppEnv{}
	for _, e := range ov {
		byEnv[e.Name] = e
	}
	testRun, prodRun := byEnv["test"].Bundle, byEnv["prod"].Bundle
	if testRun == nil || prodRun == nil || testRun.Bundle != prodRun.Bundle || testRun.Version != "v2" {
		t.Fatalf("test and prod do not run one bundle: %+v / %+v", testRun, prodRun)
	}
	if testRun.ConfigDigest != digestOf(bundleContent("hello v2")) || prodRun.ConfigDigest != digestOf(string(effective)) {
		t.Fatalf("effective digests: test %s prod %s", testRun.ConfigDigest, prodRun.ConfigDigest)
	}
	testenv.Eventually(t, 30*time.Second, "instances report their checksums", func() error {
		ov, err := alice.AppEnvironments(ctx, "shop")
		if err != nil {
			return err
		}
		for _, e := range ov {
			if e.Name == "test" && e.Reported[digestOf(bundleContent("hello v2"))] == 0 {
				return fmt.Errorf("test's instances report %v", e.Reported)
			}
			if e.Name == "prod" && e.Reported[digestOf(string(effective))] == 0 {
				return fmt.Errorf("prod's instances report %v", e.Reported)
			}
		}
		return nil
	})
	if testRun.Analysis != environments.AnalysisPassed {
		t.Fatalf("test's analysis of v2: %s (%s)", testRun.Analysis, testRun.AnalysisDetail)
	}

	// analysis failed upstream: v3 fails its checks in test and is rolled back there
	w.fmu.Lock()
	w.failing["v3"] = true
	w.fmu.Unlock()
	w.put("dev", "v3", "hello v3")
	w.healthy("dev", "v3")
	w.clock.Advance(10 * time.Minute) // 10:20
	w.ctl.Kick()
	testenv.Eventually(t, 2*time.Minute, "v3 fails its analysis in test", func() error {
		ov, err := alice.AppEnvironments(ctx, "shop")
		if err != nil {
			return err
		}
		for _, e := range ov {
			if e.Name == "test" {
				return testenv.Check(e.Failed != nil && e.Failed.Version == "v3" && e.Failed.Analysis, "%+v (%s %s)", e.Failed, e.Phase, e.Message)
			}
		}
		return errors.New("no test environment")
	})
	w.clock.Advance(30 * time.Minute) // 10:50
	r, err = alice.PromoteEnv(ctx, "shop", "prod", "")
	w.refused("promote after test's analysis failed", r, err, promotion.Refused, environments.RuleAnalysis, "analysis failed in test")
	w.prodUnchanged("v2")

	// a newer bundle in test invalidates earlier approvals for prod
	w.put("dev", "v4", "hello v4")
	w.healthy("dev", "v4")
	w.clock.Advance(10 * time.Minute) // 11:00
	w.ctl.Kick()
	w.healthy("test", "v4")
	w.clock.Advance(30 * time.Minute) // 11:30
	r, err = alice.PromoteEnv(ctx, "shop", "prod", "")
	w.refused("promote v4", r, err, promotion.Pending, environments.RuleApprovals, "0 of 2")
	r, err = bob.ApproveEnv(ctx, "shop", "prod", "")
	w.refused("bob approves v4", r, err, promotion.Approved, environments.RuleApprovals, "1 of 2")
	v4 := r.Request.Bundle
	w.put("dev", "v5", "hello v5")
	w.healthy("dev", "v5")
	w.clock.Advance(10 * time.Minute) // 11:40
	w.ctl.Kick()
	w.healthy("test", "v5")
	testenv.Eventually(t, 30*time.Second, "the request for v4 superseded", func() error {
		req := w.request()
		return testenv.Check(req != nil && req.Bundle == v4 && req.State == environments.Superseded, "%+v", req)
	})
	w.clock.Advance(30 * time.Minute) // 12:10
	r, err = alice.PromoteEnv(ctx, "shop", "prod", "")
	w.refused("promote v5", r, err, promotion.Pending, environments.RuleApprovals, "0 of 2 approvals of v5")
	if r.Verdict.Approvals != 0 || r.Request.Bundle == v4 {
		t.Fatalf("bob's approval of v4 counts for v5: %+v", r.Verdict)
	}
	w.prodUnchanged("v2")

	// the audit log has the promotion and the refusals
	recs, err := w.as("bob", "").Audit(ctx, client.AuditQuery{App: "shop", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var promoted, denied, refusals int
	autoInto := map[string]int{} // bundle -> automatic promotions into test
	for _, a := range recs {
		switch {
		case a.Env == "test" && a.Actor == environments.AutoRequester && strings.HasPrefix(a.Action, "promote ") && a.Outcome == "allowed":
			autoInto[fmt.Sprint(a.Content["bundle"])]++
		case a.Env == "prod" && strings.HasPrefix(a.Action, "promote v2") && a.Outcome == "allowed":
			promoted++
		case a.Outcome == "denied" && a.Actor == "ci":
			denied++
		case a.Env == "prod" && strings.Contains(a.Action, "refused"):
			refusals++
		}
	}
	if promoted != 1 || denied == 0 || refusals < 3 {
		t.Fatalf("audit log: %d promotions of v2 into prod (want 1), %d denials of ci, %d refusals", promoted, denied, refusals)
	}
	// autoPromote writes each bundle once, however long test's centre
	// takes to tell test's engine
	if len(autoInto) == 0 {
		t.Fatal("audit log: no automatic promotion into test")
	}
	for b, n := range autoInto {
		if n != 1 {
			t.Fatalf("audit log: bundle %s promoted into test automatically %d times, want once", b, n)
		}
	}
}
