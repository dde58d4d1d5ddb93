package nacos_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

func newRegistry(t testing.TB, srv *polaris.Server) *nacos.Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := testConfig(srv, group)
	cfg.Logger = testLogger(t)
	r, err := nacos.NewRegistry(ctx, cfg)
	if err != nil {
		t.Fatalf("nacos.NewRegistry: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// follower records a subscription's latest list.
type follower struct {
	mu    sync.Mutex
	lists [][]nacos.Instance
	done  chan struct{}
}

func follow(ch <-chan []nacos.Instance) *follower {
	f := &follower{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for l := range ch {
			f.mu.Lock()
			f.lists = append(f.lists, l)
			f.mu.Unlock()
		}
	}()
	return f
}

func (f *follower) latest() ([]nacos.Instance, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lists) == 0 {
		return nil, 0
	}
	return f.lists[len(f.lists)-1], len(f.lists)
}

// describe renders instances as "addr:version:group:region:env:zone",
// reading our metadata keys only (Polaris adds internal-* keys).
func describe(insts []nacos.Instance) string {
	var parts []string
	for _, in := range insts {
		if in.Metadata[nacos.MetaVersion] != in.Version {
			return fmt.Sprintf("%s: Version %q but metadata %q", in.Addr(), in.Version, in.Metadata[nacos.MetaVersion])
		}
		parts = append(parts, strings.Join([]string{in.Addr(), in.Version, in.Group, in.Region, in.Env, in.Zone, in.Metadata["team"]}, ":"))
	}
	return strings.Join(parts, " ")
}

func (f *follower) wait(t testing.TB, want string) {
	t.Helper()
	testenv.Eventually(t, within, "subscriber sees "+want, func() error {
		l, n := f.latest()
		if n == 0 {
			return fmt.Errorf("no list yet")
		}
		if got := describe(l); got != want {
			return fmt.Errorf("latest of %d lists: %q", n, got)
		}
		return nil
	})
}

func waitInstances(t testing.TB, r *nacos.Registry, service, want string) {
	t.Helper()
	testenv.Eventually(t, within, "instances of "+service+" = "+want, func() error {
		insts, err := r.Instances(ctxT(t), service)
		if err != nil {
			return err
		}
		if got := describe(insts); got != want {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}

func TestRegistryRegisterSubscribe(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	r := newRegistry(t, srv)
	ctx := ctxT(t)

	sub := follow(r.Subscribe(ctx, "demo"))
	sub.wait(t, "") // the first list: nothing registered yet

	v1 := nacos.Instance{Service: "demo", IP: "127.0.0.1", Port: 9001, Version: "v1", Group: "blue", Region: "cn-east", Env: "prod", Zone: "z1"}
	v2 := nacos.Instance{Service: "demo", IP: "127.0.0.1", Port: 9002, Version: "v2", Group: "blue", Region: "cn-east", Env: "prod", Zone: "z2",
		Metadata: map[string]string{"team": "pay"}}
	start := time.Now()
	if err := r.Register(ctx, v1); err != nil {
		t.Fatalf("register v1: %v", err)
	}
	sub.wait(t, "127.0.0.1:9001:v1:blue:cn-east:prod:z1:")
	t.Logf("register -> subscriber: %v", time.Since(start).Round(time.Millisecond))
	if err := r.Register(ctx, v2); err != nil {
		t.Fatalf("register v2: %v", err)
	}
	want := "127.0.0.1:9001:v1:blue:cn-east:prod:z1: 127.0.0.1:9002:v2:blue:cn-east:prod:z2:pay"
	sub.wait(t, want)
	waitInstances(t, r, "demo", want)
	// Registering the same instance again changes nothing.
	if err := r.Register(ctx, v2); err != nil {
		t.Fatalf("register v2 again: %v", err)
	}
	// Re-registering with new metadata updates it.
	v1.Version = "v1.1"
	if err := r.Register(ctx, v1); err != nil {
		t.Fatalf("re-register v1: %v", err)
	}
	sub.wait(t, "127.0.0.1:9001:v1.1:blue:cn-east:prod:z1: 127.0.0.1:9002:v2:blue:cn-east:prod:z2:pay")

	if err := r.Deregister(ctx, v1); err != nil {
		t.Fatalf("deregister v1: %v", err)
	}
	sub.wait(t, "127.0.0.1:9002:v2:blue:cn-east:prod:z2:pay")
	if err := r.Deregister(ctx, v1); err != nil {
		t.Fatalf("deregister v1 again: %v", err)
	}
	if err := r.Deregister(ctx, v2); err != nil {
		t.Fatalf("deregister v2: %v", err)
	}
	// The last instance going is seen (UpdateCacheWhenEmpty).
	sub.wait(t, "")
	waitInstances(t, r, "demo", "")

	if err := r.Register(ctx, nacos.Instance{Service: "demo", IP: "127.0.0.1"}); err == nil {
		t.Error("register without a port: no error")
	}
}

func TestRegistryInstancesGoWithTheirRegistry(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	watcher := newRegistry(t, srv)
	a := newRegistry(t, srv)
	b := newRegistry(t, srv)
	ctx := ctxT(t)
	sub := follow(watcher.Subscribe(ctx, "svc"))
	if err := a.Register(ctx, nacos.Instance{Service: "svc", IP: "10.0.0.1", Port: 80, Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, nacos.Instance{Service: "svc", IP: "10.0.0.2", Port: 80, Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "10.0.0.1:80:v1::::: 10.0.0.2:80:v2:::::")
	// Closing a registry drops its (ephemeral) instances.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "10.0.0.2:80:v2:::::")
}

func TestRegistrySurvivesRestart(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	r := newRegistry(t, srv)
	ctx := ctxT(t)
	sub := follow(r.Subscribe(ctx, "demo"))
	in := nacos.Instance{Service: "demo", IP: "127.0.0.1", Port: 9001, Version: "v1"}
	if err := r.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "127.0.0.1:9001:v1:::::")
	srv.Kill()
	testenv.Eventually(t, within, "registry reports the outage", func() error {
		if err := r.Healthy(ctx); err == nil {
			return fmt.Errorf("still healthy")
		}
		return nil
	})
	srv.Restart()
	// The registry reconnects, registers again and subscribes again.
	waitInstances(t, r, "demo", "127.0.0.1:9001:v1:::::")
	in2 := nacos.Instance{Service: "demo", IP: "127.0.0.1", Port: 9002, Version: "v2"}
	if err := r.Register(ctx, in2); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "127.0.0.1:9001:v1::::: 127.0.0.1:9002:v2:::::")
}
