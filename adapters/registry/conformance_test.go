package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/registry"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

var apps atomic.Int64

func release(app, version string) *spec.Release {
	rel, err := spec.Parse([]byte(fmt.Sprintf("app: %s\nversion: %s\nbackend: {type: registry}\ntraffic: {type: gray}\n", app, version)))
	if err != nil {
		panic(err)
	}
	return rel
}

// deployer plays the deploy system the registry backend relies on: it
// watches the counts Apply recorded and starts (registers) or stops
// (deregisters) instances to match, keeping existing ones.
type deployer struct {
	reg *etcdreg.Registry
	b   *registry.Backend
	app string

	mu     sync.Mutex
	byVer  map[string][]context.CancelFunc
	serial int
}

func (d *deployer) run(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		want, ok := d.b.Desired(d.app)
		if !ok {
			continue
		}
		d.mu.Lock()
		for v := range d.byVer {
			if _, ok := want[v]; !ok {
				want[v] = 0
			}
		}
		for v, n := range want {
			for len(d.byVer[v]) < n {
				d.serial++
				ictx, cancel := context.WithCancel(ctx)
				in := gray.Instance{App: d.app, Version: v, ID: fmt.Sprintf("%s-%s-%d", d.app, v, d.serial), Addr: fmt.Sprintf("127.0.0.1:%d", 20000+d.serial), Ready: true}
				reg, err := d.reg.Register(ictx, in)
				if err != nil {
					cancel()
					break
				}
				d.byVer[v] = append(d.byVer[v], func() { cancel(); _ = reg.Deregister(context.Background()) })
			}
			for len(d.byVer[v]) > n {
				l := d.byVer[v]
				l[len(l)-1]()
				d.byVer[v] = l[:len(l)-1]
			}
		}
		d.mu.Unlock()
	}
}

func newBackend(t *testing.T, cli *clientv3.Client) (*registry.Backend, *etcdreg.Registry) {
	reg := etcdreg.New(etcdreg.Config{Client: cli, TTL: 5 * time.Second, Logger: sdktest.Logger(t, slog.LevelWarn)})
	b, err := registry.New(registry.Config{Sources: map[string]registry.Source{"etcd": reg}})
	sdktest.Must(t, "registry backend", err)
	t.Cleanup(func() { _ = b.Close() })
	return b, reg
}

// TestConformance: the registry backend passes the Backend contract, with
// a deployer registering instances as the desired counts say.
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	adaptertest.RunBackend(t, func(t *testing.T) *adaptertest.BackendHarness {
		b, reg := newBackend(t, cli)
		app := fmt.Sprintf("conf-%d", apps.Add(1))
		ctx, cancel := context.WithCancel(context.Background())
		d := &deployer{reg: reg, b: b, app: app, byVer: map[string][]context.CancelFunc{}}
		done := make(chan struct{})
		go func() { defer close(done); d.run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return &adaptertest.BackendHarness{
			Backend:    b,
			Release:    func(v string) *spec.Release { return release(app, v) },
			Eventually: 20 * time.Second,
			Quiet:      500 * time.Millisecond,
		}
	})
}

func TestObserveFollowsRegistrations(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	b, reg := newBackend(t, cli)
	changed := make(chan string, 64)
	b.Notify(func(app string) {
		select {
		case changed <- app:
		default:
		}
	})
	ctx := sdktest.Ctx(t, time.Minute)
	got, err := b.Observe(ctx, "shop")
	sdktest.Must(t, "observe", err)
	if len(got) != 0 {
		t.Fatalf("observed %v before any registration", got)
	}
	r1, err := reg.Register(ctx, gray.Instance{App: "shop", Version: "v1", ID: "a", Addr: "127.0.0.1:1", Ready: true, Meta: map[string]string{"zone": "z1"}})
	sdktest.Must(t, "register a", err)
	_, err = reg.Put(ctx, gray.Instance{App: "shop", Version: "v2", ID: "b", Addr: "127.0.0.1:2", Ready: false}, 5*time.Second)
	sdktest.Must(t, "register b", err)
	select {
	case app := <-changed:
		if app != "shop" {
			t.Fatalf("notified for %s", app)
		}
	case <-ctx.Done():
		t.Fatal("no notification after a registration")
	}
	testenv.Eventually(t, 10*time.Second, "both instances observed", func() error {
		got, err := b.Observe(ctx, "shop")
		if err != nil || len(got) != 2 {
			return fmt.Errorf("%v %v", adaptertest.Describe(got), err)
		}
		a, bb := got[0], got[1]
		ok := a.ID == "a" && a.Version == "v1" && a.Ready && a.Meta["zone"] == "z1" && a.Meta["registry"] == "etcd" &&
			bb.ID == "b" && bb.Version == "v2" && !bb.Ready && bb.Message != ""
		return testenv.Check(ok, "%+v", got)
	})
	sdktest.Must(t, "deregister a", r1.Deregister(ctx))
	testenv.Eventually(t, 10*time.Second, "a gone at once after deregistering", func() error {
		got, _ := b.Observe(ctx, "shop")
		return testenv.Check(len(got) == 1 && got[0].ID == "b", "%s", adaptertest.Describe(got))
	})
	// Apply records counts and starts nothing
	rel := release("shop", "v2")
	sdktest.Must(t, "apply", b.Apply(ctx, rel, traffic.Replicas{"v1": 3, "v2": 1}, adapters.NoStep))
	if d, ok := b.Desired("shop"); !ok || d["v1"] != 3 || d["v2"] != 1 {
		t.Fatalf("Desired = %v %v", d, ok)
	}
	got, _ = b.Observe(ctx, "shop")
	if len(got) != 1 {
		t.Fatalf("Apply changed the instances: %v", adaptertest.Describe(got))
	}
	sdktest.Must(t, "forget", b.Forget(ctx, "shop"))
	if _, ok := b.Desired("shop"); ok {
		t.Fatal("Forget kept the desired counts")
	}
}
