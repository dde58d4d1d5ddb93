package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/sdk"
	"github.com/graylane/graylane/sdk/apireg"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

const grayRelease = `app: shop
version: %s
replicas: 2                  # instances expected per version
strategy:
  steps:
    - setWeight: 20
    - pause: {}
    - setWeight: 50
    - pause: {}
    - setWeight: 100
  progressDeadline: 2m
backend: {type: registry}
traffic: {type: gray}
gray:
  rules:
    - name: testers
      match: {headers: [{name: X-Tester, equals: "yes"}]}
      target: canary
`

// instance is one in-process service instance that counts what it serves.
type instance struct {
	version string
	addr    string
	hits    atomic.Int64
	client  *sdk.Client
}

func startInstance(t *testing.T, ctx context.Context, version string, reg sdk.Registrar, rules sdk.Rules) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	sdktest.Must(t, "listen", err)
	in := &instance{version: version, addr: ln.Addr().String()}
	in.client, err = sdk.Start(ctx, sdk.Config{App: "shop", Version: version, Addr: in.addr, Rules: rules, Registrar: reg})
	sdktest.Must(t, "sdk", err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: in.client.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.hits.Add(1)
		_, _ = io.WriteString(w, version)
	}))}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = in.client.Close(); _ = srv.Close() })
	sdktest.Must(t, "register "+version, in.client.Register(ctx))
	return in
}

// TestEndToEndRegistryCanary runs the real graylane binary with the
// registry backend and the gray router on its embedded etcd. Instances are
// in-process HTTP servers: v1 registered through POST /api/v1/instances
// with heartbeats, v2 through etcd leases. A gateway-like SDK client
// routes users by the published rules, and the traffic counted at the
// instances follows each step: 0% while v2 has not registered (the step
// waits), 20%, 50% after promote, and 0% for everyone (testers too) after
// abort.
func TestEndToEndRegistryCanary(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	ctx := sdktest.Ctx(t, 5*time.Minute)
	cli := g.Etcd()
	log := sdktest.Logger(t, slog.LevelWarn)
	etcdReg := etcdreg.New(etcdreg.Config{Client: cli, Logger: log})
	rules := etcdreg.Rules(cli, "")
	t.Cleanup(func() { _ = rules.Close() })
	api := apireg.New(apireg.Config{Server: g.APIURL, TTL: 3 * time.Second, Logger: log})
	registryCanary(t, ctx, g, api, etcdReg, etcdReg, rules, log)
}

// registryCanary is the scenario of the registry canary end-to-end tests:
// v1 instances register with v1Reg, v2 instances with v2Reg, the edge
// follows disc and rules.
func registryCanary(t *testing.T, ctx context.Context, g *graylanetest.Graylane, v1Reg, v2Reg sdk.Registrar, disc sdk.Discovery, rules sdk.Rules, log *slog.Logger) {
	var v1s []*instance
	for i := 0; i < 2; i++ {
		v1s = append(v1s, startInstance(t, ctx, "v1", v1Reg, rules))
	}
	g.PutSpec("shop", fmt.Sprintf(grayRelease, "v1"))
	waitFor(t, g, "shop", 60*time.Second, "v1 healthy on its registered instances", healthyAt("v1"))

	edge, err := sdk.Start(ctx, sdk.Config{App: "gateway", Version: "v0", Rules: rules, Discovery: disc, Services: []string{"shop"}, Edge: true, Logger: log})
	sdktest.Must(t, "edge client", err)
	t.Cleanup(func() { _ = edge.Close() })
	sdktest.Must(t, "edge ready", edge.Ready(ctx))
	testenv.Eventually(t, 30*time.Second, "the edge sees v1's instances", func() error {
		return testenv.Check(len(edge.Instances("shop")) == 2, "%v", edge.Instances("shop"))
	})
	httpc := &http.Client{Transport: edge.Transport(nil), Timeout: 5 * time.Second}

	// measure sends one request per user through the edge and returns the
	// share served by v2, counted at the instances.
	all := func() []*instance { return v1s }
	measure := func(users int, header map[string]string) (v2share float64) {
		t.Helper()
		before := map[string]int64{}
		for _, in := range all() {
			before[in.version] += in.hits.Load()
		}
		for u := 0; u < users; u++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://shop/", nil)
			req.Header.Set(gray.DefaultUserHeader, fmt.Sprintf("user-%d", u))
			for k, v := range header {
				req.Header.Set(k, v)
			}
			resp, err := httpc.Do(req)
			sdktest.Must(t, "request through the edge", err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("user-%d: %s %s", u, resp.Status, body)
			}
		}
		after := map[string]int64{}
		for _, in := range all() {
			after[in.version] += in.hits.Load()
		}
		served := after["v2"] - before["v2"] + after["v1"] - before["v1"]
		if served != int64(users) {
			t.Fatalf("instances counted %d requests, want %d", served, users)
		}
		share := float64(after["v2"]-before["v2"]) / float64(users) * 100
		t.Logf("%d users (extra headers %v): the instances served %.2f%% of them from v2", users, header, share)
		return share
	}
	// published returns the document in force, through the API. A 404 is
	// an error to retry, not a failure: Polaris' read cache can miss a
	// document for a moment after it was rewritten (see docs/nacos.md).
	published := func() (gray.Document, error) {
		var d gray.Document
		resp, err := http.Get(g.APIURL + "/api/v1/apps/shop/gray")
		if err != nil {
			return d, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return d, fmt.Errorf("GET /api/v1/apps/shop/gray: %s %s", resp.Status, b)
		}
		return d, json.NewDecoder(resp.Body).Decode(&d)
	}
	// inForce waits until the edge runs the published document and it
	// routes v2 at w%.
	inForce := func(w int) gray.Document {
		t.Helper()
		var d gray.Document
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("v2 at %d%% published and followed by the edge", w), func() error {
			var err error
			if d, err = published(); err != nil {
				return err
			}
			got := d.SplitOf().Map()["v2"]
			return testenv.Check(got == w && edge.Router().Generation("shop") >= d.Generation, "published split %v (generation %d), edge at generation %d", d.Split, d.Generation, edge.Router().Generation("shop"))
		})
		return d
	}
	if s := measure(200, nil); s != 0 {
		t.Fatalf("before the release, %.1f%% of users reached v2", s)
	}

	// v2 is desired but has not registered: the first step waits at 0%;
	// the testers rule is published already (v2 is wanted).
	sdktest.Must(t, "set version", g.Client().SetVersion(ctx, "shop", "v2"))
	waitFor(t, g, "shop", 30*time.Second, "rollout of v2 started", func(v engine.AppView) bool {
		return v.Status.CanaryVersion == "v2" && v.Status.Phase == rollout.Progressing
	})
	d := inForce(0)
	if len(d.Rules) != 1 || d.Rules[0].Version != "v2" || d.Canary != "v2" {
		t.Fatalf("published before v2 registered: rules %+v canary %q, want testers -> v2", d.Rules, d.Canary)
	}
	if s := measure(300, nil); s != 0 {
		t.Fatalf("with no v2 instance registered, %.1f%% of users reached v2", s)
	}
	if v, _ := g.Client().App(ctx, "shop"); v.Status.Weights["v2"] != 0 || v.Status.Step != 0 {
		t.Fatalf("the step advanced without v2 instances: %+v", v.Status)
	}

	// v2 registers (etcd leases): the step completes, 20%, then pause.
	for i := 0; i < 2; i++ {
		v1s = append(v1s, startInstance(t, ctx, "v2", v2Reg, rules))
	}
	testenv.Eventually(t, 30*time.Second, "the edge sees v2's instances", func() error {
		return testenv.Check(len(edge.Instances("shop")) == 4, "%v", edge.Instances("shop"))
	})
	waitFor(t, g, "shop", 30*time.Second, "paused at v2 20%", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Weights["v2"] == 20
	})
	inForce(20)
	const users = 2000
	if s := measure(users, nil); math.Abs(s-20) > 2.5 {
		t.Fatalf("at v2 20%%, the instances served %.1f%% of users from v2", s)
	}
	if s := measure(100, map[string]string{"X-Tester": "yes"}); s != 100 {
		t.Fatalf("testers: %.1f%% reached v2, want 100%%", s)
	}
	view := instancesView(t, g)
	if len(view["v1"]) != 2 || len(view["v2"]) != 2 {
		t.Fatalf("GET /api/v1/apps/shop/instances: %v, want 2 instances of v1 and of v2", view)
	}

	sdktest.Must(t, "promote", promote(ctx, g))
	waitFor(t, g, "shop", 30*time.Second, "paused at v2 50%", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Weights["v2"] == 50
	})
	inForce(50)
	if s := measure(users, nil); math.Abs(s-50) > 2.5 {
		t.Fatalf("at v2 50%%, the instances served %.1f%% of users from v2", s)
	}

	_, err = g.Client().Command(ctx, "shop", rollout.CmdAbort)
	sdktest.Must(t, "abort", err)
	waitFor(t, g, "shop", 30*time.Second, "aborted", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Degraded && v.Status.Weights["v1"] == 100
	})
	// The abort's first pass moves the split (v2 still running: the engine
	// drains before it scales down); the next lets v2 go, which drops the
	// rules to it.
	testenv.Eventually(t, 30*time.Second, "rules to v2 dropped after the abort", func() error {
		d = inForce(0)
		return testenv.Check(len(d.Rules) == 0, "generation %d still has rules %+v", d.Generation, d.Rules)
	})
	if s := measure(users, nil); s != 0 {
		t.Fatalf("after abort, %.1f%% of users reached v2", s)
	}
	if s := measure(100, map[string]string{"X-Tester": "yes"}); s != 0 {
		t.Fatalf("after abort, %.1f%% of testers reached v2", s)
	}
}

func promote(ctx context.Context, g *graylanetest.Graylane) error {
	_, err := g.Client().Command(ctx, "shop", rollout.CmdPromote)
	return err
}

func instancesView(t *testing.T, g *graylanetest.Graylane) map[string][]gray.Instance {
	t.Helper()
	resp, err := http.Get(g.APIURL + "/api/v1/apps/shop/instances")
	sdktest.Must(t, "GET instances", err)
	defer resp.Body.Close()
	var v struct {
		Versions map[string][]gray.Instance `json:"versions"`
	}
	sdktest.Must(t, "decode instances", json.NewDecoder(resp.Body).Decode(&v))
	return v.Versions
}
