package proxyd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/adapters/proxy/proxyd"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

const serveEnv = "PROXYD_TEST_SERVE_DIR"

// TestMain doubles as the proxy process: the supervisor tests start this
// test binary with serveEnv set, as graylane starts `graylane proxy`.
func TestMain(m *testing.M) {
	if dir := os.Getenv(serveEnv); dir != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := proxyd.Serve(ctx, proxyd.ServeConfig{Dir: dir, Version: "test"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// supervise starts (or adopts) the proxy process of dir; the test kills
// whatever proxy process is left at its end.
func supervise(t *testing.T, dir string) *proxyd.Supervisor {
	t.Helper()
	s, err := proxyd.Supervise(context.Background(), proxyd.SupervisorConfig{
		Dir: dir, Command: []string{os.Args[0], "-test.run=^$"}, Env: []string{serveEnv + "=" + dir},
		CheckEvery: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if pid := s.PID(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return s
}

func upstream(t *testing.T, version string) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		io.WriteString(w, version)
	})}
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func versionAt(addr string) string {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("X-Version")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestControlAPI: the client drives the proxy process's Local over the
// socket; errors come back as the DataPlane contract says.
func TestControlAPI(t *testing.T) {
	testenv.IntegrationTest(t)
	s := supervise(t, t.TempDir())
	c := s.Client()
	ctx := context.Background()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	v1 := upstream(t, "v1")
	eps := proxy.Endpoints{"v1": {v1}}
	split := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v1", Weight: 100}}}
	rt, err := c.Update(ctx, "shop", proxy.Update{Settings: &proxy.Settings{Listen: addr, Salt: "s-1"}, Split: &split, Endpoints: &eps})
	if err != nil || rt.Addr == "" || rt.Settings.Salt != "s-1" {
		t.Fatalf("Update = %+v, %v", rt, err)
	}
	if v := versionAt(addr); v != "v1" {
		t.Fatalf("the proxy process serves %q", v)
	}
	if apps, err := c.Apps(ctx); err != nil || len(apps) != 1 || apps[0] != "shop" {
		t.Fatalf("Apps = %v, %v", apps, err)
	}
	if n, err := c.InFlight(ctx, "shop", v1); err != nil || n != 0 {
		t.Fatalf("InFlight = %d, %v", n, err)
	}
	if _, err := c.Routes(ctx, "nobody"); !errors.Is(err, proxy.ErrUnknownApp) {
		t.Fatalf("Routes of an unknown app: %v, want ErrUnknownApp", err)
	}
	bad := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v1", Weight: 60}}}
	if _, err := c.Update(ctx, "shop", proxy.Update{Split: &bad}); !errors.Is(err, spec.ErrInvalid) {
		t.Fatalf("invalid split: %v, want ErrInvalid", err)
	}
	if rt, _ := c.Routes(ctx, "shop"); !rt.Split.Equal(split) {
		t.Fatalf("an invalid split changed the routes: %+v", rt.Split)
	}
	busy := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	hold, err := listenOn(busy)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if rt, err := c.Update(ctx, "other", proxy.Update{Settings: &proxy.Settings{Listen: busy}, Split: &split}); err == nil || rt.App != "other" || !rt.Split.Equal(split) {
		t.Fatalf("listen on a busy address: %+v, %v; want the routes kept and an error", rt, err)
	}
	if err := c.Forget(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if v := versionAt(addr); v != "" {
		t.Fatalf("the proxy still serves after Forget: %q", v)
	}
	// A second proxy process on the same directory is refused.
	err = proxyd.Serve(ctx, proxyd.ServeConfig{Dir: filepath.Dir(c.Socket())})
	if !errors.Is(err, proxyd.ErrDirInUse) {
		t.Fatalf("a second Serve on the directory: %v, want ErrDirInUse", err)
	}
}

// TestSupervisorAdoptsAndRestarts: a new supervisor (a restarted graylane)
// adopts the running proxy process; when the process is SIGKILLed, the
// supervisor starts another, which serves the last routes from its file.
func TestSupervisorAdoptsAndRestarts(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	s1 := supervise(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	eps := proxy.Endpoints{"v1": {upstream(t, "v1")}, "v2": {upstream(t, "v2")}}
	split := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v2", Weight: 100}, {Version: "v1", Weight: 0}}}
	if _, err := s1.Client().Update(context.Background(), "shop", proxy.Update{Settings: &proxy.Settings{Listen: addr}, Split: &split, Endpoints: &eps}); err != nil {
		t.Fatal(err)
	}
	first := s1.PID()
	s1.Close() // graylane dies; the proxy process lives on
	if v := versionAt(addr); v != "v2" {
		t.Fatalf("without a supervisor the proxy serves %q, want v2", v)
	}
	s2 := supervise(t, dir)
	if s2.PID() != first {
		t.Fatalf("the new supervisor runs pid %d, want the adopted %d", s2.PID(), first)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new proxy process", func() bool { return s2.PID() != first && s2.PID() != 0 })
	waitFor(t, "the new process to serve the last routes", func() bool { return versionAt(addr) == "v2" })
	if b, _ := os.ReadFile(filepath.Join(dir, proxyd.LockName)); string(b) != strconv.Itoa(s2.PID()) {
		t.Fatalf("lock file holds %q, want pid %d", b, s2.PID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if v := versionAt(addr); v != "" {
		t.Fatalf("the proxy serves after Stop: %q", v)
	}
}

// TestRouterConformance runs the shared TrafficRouter suite against the
// Router driving a proxy process.
func TestRouterConformance(t *testing.T) {
	testenv.IntegrationTest(t) // starts proxy processes (this test binary)
	adaptertest.RunRouter(t, func(t *testing.T) *adaptertest.RouterHarness {
		s := supervise(t, t.TempDir())
		src := adaptertest.Instances{"conf": {
			{ID: "a", Version: "v1", Addr: upstream(t, "v1"), Ready: true}, {ID: "b", Version: "v1", Addr: upstream(t, "v1"), Ready: true},
			{ID: "c", Version: "v2", Addr: upstream(t, "v2"), Ready: true}, {ID: "d", Version: "v2", Addr: upstream(t, "v2"), Ready: true},
			{ID: "e", Version: "v3", Addr: upstream(t, "v3"), Ready: false},
		}}
		r, err := proxy.NewRouter(proxy.RouterConfig{DataPlane: s.Client(), Instances: src, Resync: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		return &adaptertest.RouterHarness{
			Router: r,
			Release: func(v string) *spec.Release {
				rel := &spec.Release{App: "conf", Version: v,
					Backend: spec.Backend{Type: spec.BackendWebhook, Webhook: &spec.WebhookBackend{URL: "http://127.0.0.1:1/d", StatusURL: "http://127.0.0.1:1/s"}},
					Traffic: &spec.Traffic{Type: "proxy", Proxy: &spec.ProxyTraffic{Listen: addr}, Trust: &spec.TrafficTrust{ClientIPs: []string{"127.0.0.1"}}}}
				if err := rel.Validate(); err != nil {
					t.Fatal(err)
				}
				return rel
			},
			Versions: []string{"v1", "v2"},
			Unready:  "v3",
			Probe:    adaptertest.HTTPProbe("http://" + addr + "/"),
		}
	})
}

var _ adapters.TrafficRouter = (*proxy.Router)(nil)
