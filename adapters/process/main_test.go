package process_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/process"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// demoBin is cmd/demoapp, built once per test binary into a temp dir.
var demoBin string

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helperMain(dir))
	}
	if !testenv.Integration() {
		os.Exit(m.Run()) // the unit tier runs no demoapp processes
	}
	tmp, err := os.MkdirTemp("", "graylane-process-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBin, err = adaptertest.BuildDemoApp(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// testLogger writes to the test's output until the test's cleanups end.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{out: t.Output()}
	t.Cleanup(w.close) // registered first: runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	out  io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.out.Write(p)
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func testConfig(t testing.TB, dir string) process.Config {
	return process.Config{
		StateDir:     dir,
		Logger:       testLogger(t),
		RestartDelay: 50 * time.Millisecond,
		DrainTimeout: 30 * time.Second,
	}
}

// routed is a Backend with graylane's built-in proxy in front, wired as
// graylane wires them: the proxy's endpoints follow Observe (kicked by the
// backend's notifications), and the backend drains through the proxy.
type routed struct {
	*process.Backend
	Router *proxy.Router
	Local  *proxy.Local
}

// wire starts a Backend on cfg with a proxy whose routes are kept in
// cfg.StateDir/routes.json (so a restart serves them again).
func wire(cfg process.Config) (*routed, error) {
	local, err := proxy.NewLocal(proxy.LocalConfig{Logger: cfg.Logger, StateFile: filepath.Join(cfg.StateDir, "routes.json")})
	if err != nil {
		return nil, err
	}
	var b *process.Backend
	router, err := proxy.NewRouter(proxy.RouterConfig{DataPlane: local, Logger: cfg.Logger, Resync: time.Second,
		Instances: proxy.InstancesFunc(func(ctx context.Context, app string) ([]adapters.Instance, error) { return b.Observe(ctx, app) })})
	if err != nil {
		local.Close()
		return nil, err
	}
	cfg.Drainer = router
	b, err = process.New(cfg)
	if err != nil {
		router.Close()
		local.Close()
		return nil, err
	}
	b.Notify(router.Kick)
	return &routed{Backend: b, Router: router, Local: local}, nil
}

// Forget forgets app in the backend, then in the proxy, as the engine does
// when an app is deleted.
func (r *routed) Forget(ctx context.Context, app string) error {
	if err := r.Backend.Forget(ctx, app); err != nil {
		return err
	}
	return r.Router.Forget(ctx, app)
}

// Close closes the backend, then its proxy (graylane's shutdown).
func (r *routed) Close() error {
	err := r.Backend.Close()
	r.Router.Close()
	r.Local.Close()
	return err
}

// newBackend returns a routed Backend on dir that is stopped (StopAll) and
// closed when the test ends.
func newBackend(t testing.TB, dir string) *routed {
	t.Helper()
	return startBackend(t, testConfig(t, dir))
}

func startBackend(t testing.TB, cfg process.Config) *routed {
	t.Helper()
	b, err := wire(cfg)
	if err != nil {
		t.Fatalf("process.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.StopAll(ctx); err != nil && !errors.Is(err, process.ErrClosed) {
			t.Errorf("StopAll: %v", err)
		}
		b.Close()
	})
	return b
}

func freeAddr(t testing.TB) string {
	return "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
}

// demoRelease is a valid release running cmd/demoapp (built by TestMain
// in integration runs only).
func demoRelease(t testing.TB, app, version, proxyAddr string, extra ...string) *spec.Release {
	t.Helper()
	testenv.AssertIntegrationTest(t, "cmd/demoapp processes")
	rel := &spec.Release{
		App:     app,
		Version: version,
		Backend: spec.Backend{Type: spec.BackendProcess, Process: &spec.ProcessBackend{
			Command:         append([]string{demoBin, "--version", "{{.Version}}", "--addr", "{{.Addr}}"}, extra...),
			Proxy:           proxyAddr,
			StopGracePeriod: spec.D(10 * time.Second),
		}},
		Health: spec.Health{Interval: spec.D(200 * time.Millisecond), Timeout: spec.D(2 * time.Second)},
		// the tests' clients are on loopback: trusted, so they may preview
		Traffic: &spec.Traffic{Trust: &spec.TrafficTrust{ClientIPs: []string{"127.0.0.1"}}},
	}
	if err := rel.Validate(); err != nil {
		t.Fatalf("test release: %v", err)
	}
	return rel
}

// apply applies want; on a routed backend it first brings the app's proxy in
// line with rel, as graylane does on every pass (resolving the router).
func apply(t testing.TB, b adapters.Backend, rel *spec.Release, want traffic.Replicas) {
	t.Helper()
	if r, ok := b.(*routed); ok && rel.ProxyListen() != "" {
		if err := r.Router.Ensure(context.Background(), rel); err != nil {
			t.Fatalf("Ensure proxy of %s: %v", rel.App, err)
		}
	}
	if err := b.Apply(context.Background(), rel, want, adapters.NoStep); err != nil {
		t.Fatalf("Apply(%s, %v): %v", rel.App, want, err)
	}
}

func setWeights(t testing.TB, r adapters.TrafficRouter, rel *spec.Release, ws ...any) {
	t.Helper()
	var s traffic.Split
	for i := 0; i+1 < len(ws); i += 2 {
		s.Weights = append(s.Weights, traffic.VersionWeight{Version: ws[i].(string), Weight: ws[i+1].(int)})
	}
	if err := r.SetWeights(context.Background(), rel, s); err != nil {
		t.Fatalf("SetWeights(%+v): %v", s, err)
	}
}

// waitInstances polls Observe until ok accepts the instances.
func waitInstances(t testing.TB, b adapters.Backend, app, what string, ok func([]adapters.Instance) bool) []adapters.Instance {
	t.Helper()
	var got []adapters.Instance
	testenv.Eventually(t, 60*time.Second, what, func() error {
		var err error
		got, err = b.Observe(context.Background(), app)
		return testenv.Check(err == nil && ok(got), "app %s has %s (err %v)", app, adaptertest.Describe(got), err)
	})
	return got
}

// waitReady waits until app has exactly want, all ready.
func waitReady(t testing.TB, b adapters.Backend, app string, want traffic.Replicas) []adapters.Instance {
	t.Helper()
	return waitInstances(t, b, app, fmt.Sprintf("%v ready", want), func(ins []adapters.Instance) bool {
		n := map[string]int{}
		for _, in := range ins {
			if !in.Ready {
				return false
			}
			n[in.Version]++
		}
		if len(n) != len(want) {
			return false
		}
		for v, c := range want {
			if n[v] != c {
				return false
			}
		}
		return true
	})
}

func pidOf(t testing.TB, in adapters.Instance) int {
	t.Helper()
	pid, err := strconv.Atoi(in.Meta["pid"])
	if err != nil {
		t.Fatalf("instance %s has no pid in Meta %v", in.ID, in.Meta)
	}
	return pid
}

func pids(t testing.TB, ins []adapters.Instance) map[string]int {
	out := map[string]int{}
	for _, in := range ins {
		out[in.ID] = pidOf(t, in)
	}
	return out
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func kill(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("pid %d dead", pid), func() error {
		return testenv.Check(!alive(pid), "pid %d alive", pid)
	})
}

// get sends one GET through addr and returns the response's version and
// upstream, failing on anything but 200.
func get(t testing.TB, client *http.Client, url string, header http.Header) (version, upstream string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	return resp.Header.Get("X-Version"), resp.Header.Get("X-Graylane-Upstream")
}

func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}}
}

// refuses reports whether nothing listens on addr.
func refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}
