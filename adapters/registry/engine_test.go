package registry_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

type resolver struct {
	b adapters.Backend
	r adapters.TrafficRouter
}

func (r resolver) Backend(*spec.Release) (adapters.Backend, error)      { return r.b, nil }
func (r resolver) Router(*spec.Release) (adapters.TrafficRouter, error) { return r.r, nil }

// TestProgressDeadlineWhenTheCanaryNeverRegisters runs the real engine on
// the registry backend and the gray router: v1 is registered, v2 never
// is; the first step waits at 0% until the progress deadline, then the
// release is rolled back (autoRollback) and the published document routes
// only to v1, with no rule to v2 left.
func TestProgressDeadlineWhenTheCanaryNeverRegisters(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	b, reg := newBackend(t, cli)
	router, err := grayrouter.New(grayrouter.Config{Store: memory.New(), Centre: "memory"})
	sdktest.Must(t, "router", err)
	src := memory.New()
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(),
		Resolver: resolver{b: router.Track(b), r: router}, Resync: 200 * time.Millisecond,
		Logger: sdktest.Logger(t, slog.LevelWarn)})
	b.Notify(eng.Trigger)
	ctx := sdktest.Ctx(t, time.Minute)
	go func() { _ = eng.Run(ctx) }()

	for i := 0; i < 2; i++ {
		_, err := reg.Register(ctx, gray.Instance{App: "shop", Version: "v1", ID: fmt.Sprint(i), Addr: fmt.Sprintf("127.0.0.1:%d", 7100+i), Ready: true})
		sdktest.Must(t, "register v1", err)
	}
	doc := func(v string) []byte {
		return []byte(fmt.Sprintf(`app: shop
version: %s
replicas: 2
strategy: {steps: [{setWeight: 20}], progressDeadline: 2s, autoRollback: true}
backend: {type: registry}
gray: {rules: [{name: testers, match: {headers: [{name: X-Tester, equals: "yes"}]}, target: canary}]}
`, v))
	}
	_, err = src.Put(ctx, "shop", doc("v1"), "")
	sdktest.Must(t, "put v1", err)
	view := func() engine.AppView { v, _ := eng.App(ctx, "shop"); return v }
	testenv.Eventually(t, 20*time.Second, "v1 healthy", func() error {
		v := view()
		return testenv.Check(v.Status.Phase == rollout.Healthy && v.Status.StableVersion == "v1", "%+v", v.Status)
	})

	start := time.Now()
	_, err = src.Put(ctx, "shop", doc("v2"), "")
	sdktest.Must(t, "put v2", err)
	testenv.Eventually(t, 20*time.Second, "testers rule published while v2 is wanted", func() error {
		d, err := router.Document(ctx, "shop")
		return testenv.Check(err == nil && len(d.Rules) == 1 && d.Rules[0].Version == "v2", "%+v %v", d, err)
	})
	testenv.Eventually(t, 20*time.Second, "rolled back at the progress deadline", func() error {
		v := view()
		return testenv.Check(v.Status.Phase == rollout.RolledBack, "%s: %s", v.Status.Phase, v.Status.Message)
	})
	if waited := time.Since(start); waited < 2*time.Second {
		t.Fatalf("rolled back after %s, before the 2s deadline", waited)
	}
	if want, _ := b.Desired("shop"); want["v2"] != 0 || want["v1"] != 2 {
		t.Fatalf("desired after the rollback: %v", want)
	}
	testenv.Eventually(t, 20*time.Second, "the document routes only to v1", func() error {
		d, err := router.Document(ctx, "shop")
		return testenv.Check(err == nil && len(d.Rules) == 0 && len(d.Split) == 1 && d.Split[0].Version == "v1", "%+v %v", d, err)
	})
}
