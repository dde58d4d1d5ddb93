package proxy_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
)

// release is a valid release of app on a backend that is not process (a
// webhook), routed by the built-in proxy on proxyAddr.
func release(t testing.TB, app, version, proxyAddr string) *spec.Release {
	t.Helper()
	rel := &spec.Release{
		App:     app,
		Version: version,
		Backend: spec.Backend{Type: spec.BackendWebhook, Webhook: &spec.WebhookBackend{URL: "http://127.0.0.1:1/deploy", StatusURL: "http://127.0.0.1:1/status"}},
		// the probes come from loopback: trusted, so they may preview
		Traffic: &spec.Traffic{Type: "proxy", Proxy: &spec.ProxyTraffic{Listen: proxyAddr}, Trust: &spec.TrafficTrust{ClientIPs: []string{"127.0.0.1"}}},
	}
	if err := rel.Validate(); err != nil {
		t.Fatalf("test release: %v", err)
	}
	return rel
}

// instances is an InstanceSource the test edits: a backend's Observe.
type instances struct {
	mu   sync.Mutex
	list map[string][]adapters.Instance
	err  error
}

func (s *instances) Observe(_ context.Context, app string) ([]adapters.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]adapters.Instance(nil), s.list[app]...), s.err
}

func (s *instances) set(app string, list ...adapters.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.list == nil {
		s.list = map[string][]adapters.Instance{}
	}
	s.list[app] = list
}

func ready(version, addr string) adapters.Instance {
	return adapters.Instance{ID: version + "-" + addr, Version: version, Addr: addr, Ready: true}
}

func newRouter(t testing.TB, cfg proxy.RouterConfig) *proxy.Router {
	t.Helper()
	r, err := proxy.NewRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func freeAddr(t testing.TB) string { return "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) }

// TestRouterConformance runs the shared TrafficRouter suite against the
// Router serving a webhook backend's instances (in-process upstreams)
// behind a real listening proxy.
func TestRouterConformance(t *testing.T) {
	adaptertest.RunRouter(t, func(t *testing.T) *adaptertest.RouterHarness {
		src := &instances{}
		src.set("conf", ready("v1", newUpstream(t, "v1").addr()), ready("v1", newUpstream(t, "v1").addr()),
			ready("v2", newUpstream(t, "v2").addr()), ready("v2", newUpstream(t, "v2").addr()),
			adapters.Instance{ID: "v3-0", Version: "v3", Addr: newUpstream(t, "v3").addr(), Ready: false})
		r := newRouter(t, proxy.RouterConfig{Instances: src})
		addr := freeAddr(t)
		return &adaptertest.RouterHarness{
			Router:   r,
			Release:  func(v string) *spec.Release { return release(t, "conf", v, addr) },
			Versions: []string{"v1", "v2"},
			Unready:  "v3",
			Probe:    adaptertest.HTTPProbe("http://" + addr + "/"),
		}
	})
}

// TestRouterFollowsInstances: the proxy's endpoints follow the backend's
// ready instances on Kick and on the periodic resync; an Observe error
// keeps the last endpoints.
func TestRouterFollowsInstances(t *testing.T) {
	src := &instances{}
	a1, b1 := newUpstream(t, "v1"), newUpstream(t, "v1")
	src.set("follow", ready("v1", a1.addr()))
	local, err := proxy.NewLocal(proxy.LocalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	r := newRouter(t, proxy.RouterConfig{Instances: src, DataPlane: local, Resync: -1})
	addr := freeAddr(t)
	rel := release(t, "follow", "v1", addr)
	ctx := context.Background()
	if err := r.SetWeights(ctx, rel, splitOf("v1", 100)); err != nil {
		t.Fatal(err)
	}
	if got := local.Proxy("follow").Endpoints("v1"); len(got) != 1 || got[0] != a1.addr() {
		t.Fatalf("after SetWeights endpoints are %v, want [%s]", got, a1.addr())
	}
	src.set("follow", ready("v1", a1.addr()), ready("v1", b1.addr()))
	r.Kick("follow")
	testenv.Eventually(t, 10*time.Second, "the second instance routed", func() error {
		return testenv.Check(len(local.Proxy("follow").Endpoints("v1")) == 2, "endpoints %v", local.Proxy("follow").Endpoints("v1"))
	})

	src.mu.Lock()
	src.err = context.DeadlineExceeded
	src.mu.Unlock()
	if err := r.Sync(ctx, "follow"); err == nil {
		t.Fatal("Sync with a failing Observe returned no error")
	}
	if got := local.Proxy("follow").Endpoints("v1"); len(got) != 2 {
		t.Fatalf("a failed Observe changed the endpoints to %v", got)
	}

	// The periodic resync, without any kick.
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	src.set("follow", ready("v1", b1.addr()))
	r2 := newRouter(t, proxy.RouterConfig{Instances: src, DataPlane: local, Resync: 20 * time.Millisecond})
	_ = r2
	testenv.Eventually(t, 10*time.Second, "the resync drops the first instance", func() error {
		got := local.Proxy("follow").Endpoints("v1")
		return testenv.Check(len(got) == 1 && got[0] == b1.addr(), "endpoints %v", got)
	})
	if v := versionAt(t, addr); v != "v1" {
		t.Fatalf("proxy serves %q", v)
	}
}

// TestRouterDrain: Drain takes the address out at once and returns when
// its last request finished.
func TestRouterDrain(t *testing.T) {
	src := &instances{}
	slow, other := newUpstream(t, "v1"), newUpstream(t, "v1")
	src.set("drain", ready("v1", slow.addr()))
	local, err := proxy.NewLocal(proxy.LocalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	r := newRouter(t, proxy.RouterConfig{Instances: src, DataPlane: local, Resync: -1})
	addr := freeAddr(t)
	if err := r.SetWeights(context.Background(), release(t, "drain", "v1", addr), splitOf("v1", 100)); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/?block=1")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-slow.entered
	src.set("drain", ready("v1", other.addr())) // the backend reports it not ready, then drains
	drained := make(chan error, 1)
	go func() { drained <- r.Drain(context.Background(), "drain", slow.addr()) }()
	testenv.Eventually(t, 10*time.Second, "the drained address out of routing", func() error {
		return testenv.Check(len(local.Proxy("drain").Endpoints("v1")) == 0, "endpoints %v", local.Proxy("drain").Endpoints("v1"))
	})
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(slow.release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if code := <-done; code != 200 {
		t.Fatalf("the request in flight got %d, want 200", code)
	}
	// Unknown apps and addresses drain at once.
	if err := r.Drain(context.Background(), "nobody", slow.addr()); err != nil {
		t.Fatalf("Drain of an unknown app: %v", err)
	}
}

// TestLocalRestoresRoutes: a Local on the routes file of an earlier one
// serves the same split and endpoints before any router talks to it.
func TestLocalRestoresRoutes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "routes.json")
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	src := &instances{}
	src.set("keep", ready("v1", v1.addr()), ready("v2", v2.addr()))
	l1, err := proxy.NewLocal(proxy.LocalConfig{StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, proxy.RouterConfig{Instances: src, DataPlane: l1, Resync: -1})
	addr := freeAddr(t)
	if err := r.SetWeights(context.Background(), release(t, "keep", "v2", addr), splitOf("v2", 100, "v1", 0)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	l1.Close()
	testenv.Eventually(t, 10*time.Second, "the first proxy no longer listening", func() error {
		v := versionAt(t, addr)
		return testenv.Check(v == "", "%s still answers (version %q)", addr, v)
	})

	l2, err := proxy.NewLocal(proxy.LocalConfig{StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	for i := 0; i < 20; i++ {
		if v := versionAt(t, addr); v != "v2" {
			t.Fatalf("restored proxy served %q, want v2 (the split in force)", v)
		}
	}
	rt, err := l2.Routes(context.Background(), "keep")
	if err != nil || rt.Split.Map()["v2"] != 100 || len(rt.Endpoints["v1"]) != 1 {
		t.Fatalf("restored routes = %+v, %v", rt, err)
	}
}

// TestRouterForgetClosesListener: Forget stops the app's listener.
func TestRouterForgetClosesListener(t *testing.T) {
	r := newRouter(t, proxy.RouterConfig{Instances: &instances{}})
	addr := freeAddr(t)
	if err := r.Ensure(context.Background(), release(t, "gone", "v1", addr)); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get("http://" + addr + "/"); err != nil {
		t.Fatalf("proxy does not listen: %v", err)
	} else {
		resp.Body.Close()
	}
	if err := r.Forget(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	if v := versionAt(t, addr); v != "" {
		t.Fatalf("proxy still answers after Forget: %s", v)
	}
	if s, err := r.Weights(context.Background(), "gone"); err != nil || len(s.Weights) != 0 {
		t.Fatalf("Weights after Forget = %+v, %v; want empty", s, err)
	}
}

// versionAt sends one GET to addr and returns X-Version ("" when nothing
// answers with 200).
func versionAt(t testing.TB, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	return resp.Header.Get("X-Version")
}
