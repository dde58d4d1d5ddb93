package proxy_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

func release(t testing.TB, app, version, proxyAddr string) *spec.Release {
	t.Helper()
	rel := &spec.Release{
		App:     app,
		Version: version,
		Backend: spec.Backend{Type: spec.BackendProcess, Process: &spec.ProcessBackend{
			Command: []string{"demoapp", "--version", "{{.Version}}", "--addr", "{{.Addr}}"},
			Proxy:   proxyAddr,
		}},
	}
	if err := rel.Validate(); err != nil {
		t.Fatalf("test release: %v", err)
	}
	return rel
}

// TestRouterConformance runs the shared TrafficRouter suite against the
// Router, with in-process upstreams behind a real listening proxy.
func TestRouterConformance(t *testing.T) {
	adaptertest.RunRouter(t, func(t *testing.T) *adaptertest.RouterHarness {
		r := proxy.NewRouter(proxy.RouterConfig{})
		t.Cleanup(func() { r.Close() })
		addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
		rel := func(v string) *spec.Release { return release(t, "conf", v, addr) }
		p, err := r.Ensure(rel("v1"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"v1", "v2"} {
			p.SetEndpoints(v, []string{newUpstream(t, v).addr(), newUpstream(t, v).addr()})
		}
		return &adaptertest.RouterHarness{
			Router:   r,
			Release:  rel,
			Versions: []string{"v1", "v2"},
			Unready:  "v3",
			Probe:    adaptertest.HTTPProbe("http://" + addr + "/"),
		}
	})
}

// TestRouterWithoutAddress: a release without a proxy address gets a proxy
// that keeps its split without listening.
func TestRouterWithoutAddress(t *testing.T) {
	r := proxy.NewRouter(proxy.RouterConfig{})
	defer r.Close()
	rel := release(t, "quiet", "v1", "")
	s := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v1", Weight: 100}}}
	if err := r.SetWeights(context.Background(), rel, s); err != nil {
		t.Fatal(err)
	}
	got, err := r.Weights(context.Background(), "quiet")
	if err != nil || !got.Equal(s) {
		t.Fatalf("Weights = %+v, %v; want %+v", got, err, s)
	}
	if a := r.Proxy("quiet").Addr(); a != "" {
		t.Fatalf("proxy without an address listens on %s", a)
	}
	if err := r.Forget(context.Background(), "quiet"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Weights(context.Background(), "quiet"); len(got.Weights) != 0 {
		t.Fatalf("Weights after Forget = %+v, want empty", got)
	}
}

// TestRouterForgetClosesListener: Forget stops the app's listener.
func TestRouterForgetClosesListener(t *testing.T) {
	r := proxy.NewRouter(proxy.RouterConfig{})
	defer r.Close()
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	if _, err := r.Ensure(release(t, "gone", "v1", addr)); err != nil {
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
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("proxy still answers after Forget: %s", resp.Status)
	}
}
