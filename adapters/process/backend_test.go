package process_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/process"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// TestConformance runs the shared Backend suite against real demoapps.
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	adaptertest.RunBackend(t, func(t *testing.T) *adaptertest.BackendHarness {
		b := newBackend(t, t.TempDir())
		addr := freeAddr(t)
		return &adaptertest.BackendHarness{
			Backend:    b,
			Release:    func(v string) *spec.Release { return demoRelease(t, "conf", v, addr) },
			Eventually: 60 * time.Second,
		}
	})
}

// TestRouterConformance runs the shared TrafficRouter suite against the
// backend's router, with demoapps of two versions behind the proxy.
func TestRouterConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	adaptertest.RunRouter(t, func(t *testing.T) *adaptertest.RouterHarness {
		b := newBackend(t, t.TempDir())
		addr := freeAddr(t)
		rel := func(v string) *spec.Release { return demoRelease(t, "conf", v, addr) }
		apply(t, b, rel("v2"), traffic.Replicas{"v1": 2, "v2": 2})
		waitReady(t, b, "conf", traffic.Replicas{"v1": 2, "v2": 2})
		return &adaptertest.RouterHarness{
			Router:   b.Router,
			Release:  rel,
			Versions: []string{"v1", "v2"},
			Unready:  "v3",
			Probe:    adaptertest.HTTPProbe("http://" + addr + "/"),
		}
	})
}

func TestScaleDownStopsProcessesAndRecords(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	b := newBackend(t, dir)
	rel := demoRelease(t, "scale", "v1", "")
	apply(t, b, rel, traffic.Replicas{"v1": 3})
	ins := waitReady(t, b, "scale", traffic.Replicas{"v1": 3})
	for i, in := range ins {
		if want := fmt.Sprintf("scale-v1-%d", i); in.ID != want {
			t.Fatalf("instance %d is %s, want %s", i, in.ID, want)
		}
		for _, k := range []string{"pid", "port", "restarts", "log", "startedAt"} {
			if in.Meta[k] == "" {
				t.Fatalf("instance %s lacks Meta[%s]: %v", in.ID, k, in.Meta)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "apps", "scale", "instances", in.ID+".json")); err != nil {
			t.Fatalf("no record of %s: %v", in.ID, err)
		}
	}
	before := pids(t, ins)

	apply(t, b, rel, traffic.Replicas{"v1": 1})
	after := pids(t, waitReady(t, b, "scale", traffic.Replicas{"v1": 1}))
	if after["scale-v1-0"] != before["scale-v1-0"] {
		t.Fatalf("slot 0 was replaced: pid %d -> %d", before["scale-v1-0"], after["scale-v1-0"])
	}
	for _, id := range []string{"scale-v1-1", "scale-v1-2"} {
		if alive(before[id]) {
			t.Fatalf("%s (pid %d) still runs after scale-down", id, before[id])
		}
		if _, err := os.Stat(filepath.Join(dir, "apps", "scale", "instances", id+".json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("record of stopped %s still exists (%v)", id, err)
		}
	}
	// Its output went to its log file.
	logb, err := os.ReadFile(ins[1].Meta["log"])
	if err != nil || !strings.Contains(string(logb), "listening on") || !strings.Contains(string(logb), "signal received") {
		t.Fatalf("log of %s = %q, %v; want the demoapp's start and shutdown lines", ins[1].ID, logb, err)
	}
}

// TestDrainSlowRequest: a slow request in flight on an instance being
// stopped completes. The grace period is 1ms, so had SIGTERM come before
// the drain, SIGKILL would have cut the request.
func TestDrainSlowRequest(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	addr := freeAddr(t)
	rel := demoRelease(t, "drain", "v1", addr)
	rel.Backend.Process.StopGracePeriod = spec.D(time.Millisecond)
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	in := waitReady(t, b, "drain", traffic.Replicas{"v1": 1})[0]
	pid := pidOf(t, in)
	setWeights(t, b.Router, rel, "v1", 100)

	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := newClient().Get("http://" + addr + "/?sleep=1500ms")
		if err != nil {
			done <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			err = fmt.Errorf("%s", resp.Status)
		}
		done <- result{string(body), err}
	}()
	px := b.Local.Proxy("drain")
	testenv.Eventually(t, 60*time.Second, "the slow request in flight", func() error {
		return testenv.Check(px.InFlight(in.Addr) == 1, "InFlight = %d", px.InFlight(in.Addr))
	})

	apply(t, b, rel, traffic.Replicas{})
	waitInstances(t, b, "drain", "the instance to drain", func(ins []adapters.Instance) bool {
		return len(ins) == 1 && strings.HasPrefix(ins[0].Message, "stopping: draining")
	})
	if !alive(pid) {
		t.Fatal("the instance died while a request was in flight")
	}
	if r := <-done; r.err != nil || r.body != "v1\n" {
		t.Fatalf("slow request = %q, %v; want v1", r.body, r.err)
	}
	waitReady(t, b, "drain", traffic.Replicas{})
	if alive(pid) {
		t.Fatalf("pid %d still runs after its instance was stopped", pid)
	}
}

func TestCrashRestart(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	changed := make(chan string, 100)
	b.Notify(func(app string) {
		select {
		case changed <- app:
		default:
		}
	})
	addr := freeAddr(t)
	rel := demoRelease(t, "crash", "v1", addr)
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	first := waitReady(t, b, "crash", traffic.Replicas{"v1": 1})[0]
	for len(changed) > 0 {
		<-changed
	}

	kill(t, pidOf(t, first))
	select {
	case app := <-changed:
		if app != "crash" {
			t.Fatalf("Notify called with %q", app)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no notification after the instance died")
	}
	again := waitInstances(t, b, "crash", "a restarted, ready instance", func(ins []adapters.Instance) bool {
		return len(ins) == 1 && ins[0].Ready && ins[0].Meta["pid"] != first.Meta["pid"]
	})[0]
	if again.ID != first.ID || again.Meta["restarts"] != "1" {
		t.Fatalf("after the crash: %s restarts=%s, want %s restarts=1", again.ID, again.Meta["restarts"], first.ID)
	}
	if v, _ := get(t, newClient(), "http://"+addr+"/", nil); v != "v1" {
		t.Fatalf("proxy serves %q after the restart", v)
	}
}

// TestCrashLoopBacksOff: an instance that exits at once is restarted with a
// growing delay and reported not ready with the reason.
func TestCrashLoopBacksOff(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	rel := demoRelease(t, "loop", "v1", "", "--addr", "not-an-address")
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	in := waitInstances(t, b, "loop", "three restarts", func(ins []adapters.Instance) bool {
		n, _ := strconv.Atoi(ins[0].Meta["restarts"])
		return len(ins) == 1 && n >= 3
	})[0]
	if in.Ready || !strings.Contains(in.Message, "exited: exit status 1; restarting in ") {
		t.Fatalf("crash-looping instance: ready=%v message %q", in.Ready, in.Message)
	}
	// RestartDelay is 50ms, doubling: the third restart waits at least 200ms.
	_, after, _ := strings.Cut(in.Message, "restarting in ")
	if d, err := time.ParseDuration(after); err != nil || d < 200*time.Millisecond {
		t.Fatalf("back-off after 3 restarts = %q, want at least 200ms", after)
	}
}

func TestStartFailure(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	rel := demoRelease(t, "nobin", "v1", "")
	rel.Backend.Process.Command = []string{"/nonexistent/graylane-demo", "{{.Addr}}"}
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	in := waitInstances(t, b, "nobin", "a start failure", func(ins []adapters.Instance) bool {
		return len(ins) == 1 && strings.Contains(ins[0].Message, "start failed")
	})[0]
	if in.Ready || !strings.Contains(in.Message, "/nonexistent/graylane-demo") {
		t.Fatalf("instance %+v, want not ready naming the missing binary", in)
	}
}

// TestUnhealthyNeverRouted: an instance failing its health check is never
// added to the proxy, even pinned by header or weighted at 50%.
func TestUnhealthyNeverRouted(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	addr := freeAddr(t)
	good := demoRelease(t, "sick", "good", addr)
	apply(t, b, good, traffic.Replicas{"good": 1})
	goodPid := pidOf(t, waitReady(t, b, "sick", traffic.Replicas{"good": 1})[0])

	bad := demoRelease(t, "sick", "bad", addr, "--fail-health")
	apply(t, b, bad, traffic.Replicas{"good": 1, "bad": 1})
	waitInstances(t, b, "sick", "the bad instance to fail its health check", func(ins []adapters.Instance) bool {
		for _, in := range ins {
			if in.Version == "bad" && !in.Ready && strings.Contains(in.Message, "503") {
				return true
			}
		}
		return false
	})
	setWeights(t, b.Router, bad, "bad", 50, "good", 50)
	client := newClient()
	for i := 0; i < 100; i++ {
		hdr := http.Header{}
		if i%2 == 0 {
			hdr.Set("X-Graylane-Version", "bad")
		}
		if v, _ := get(t, client, "http://"+addr+"/", hdr); v != "good" {
			t.Fatalf("request %d served by %q, want good", i, v)
		}
	}
	if eps := b.Local.Proxy("sick").Endpoints("bad"); len(eps) != 0 {
		t.Fatalf("the unhealthy version has endpoints %v", eps)
	}
	ins, _ := b.Observe(context.Background(), "sick")
	for _, in := range ins {
		if in.Version == "good" && pidOf(t, in) != goodPid {
			t.Fatalf("applying a new release restarted the good instance")
		}
	}
}

// TestCommandEnvDir: command, env and dir are templated and the command runs
// without a shell.
func TestCommandEnvDir(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	work := t.TempDir()
	rel := demoRelease(t, "tmpl", "v1", "")
	rel.Backend.Process.Command = []string{demoBin, "--version", "$HOME;{{.Slot}}", "--addr", "{{.Addr}}"}
	rel.Backend.Process.Env = map[string]string{"DEMO_ID": "{{.InstanceID}}", "DEMO_PORT": "{{.Port}}"}
	rel.Backend.Process.Dir = work
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	in := waitReady(t, b, "tmpl", traffic.Replicas{"v1": 1})[0]

	resp, err := newClient().Get("http://" + in.Addr + "/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		Version string
		Cwd     string
		Env     map[string]string
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Version != "$HOME;0" {
		t.Errorf("version = %q, want the literal $HOME;0 (no shell)", info.Version)
	}
	if info.Cwd != work {
		t.Errorf("cwd = %q, want %q", info.Cwd, work)
	}
	if info.Env["DEMO_ID"] != "tmpl-v1-0" || info.Env["DEMO_PORT"] != in.Meta["port"] {
		t.Errorf("env = %v, want DEMO_ID=tmpl-v1-0 DEMO_PORT=%s", info.Env, in.Meta["port"])
	}
}

// TestAdoption: a Backend closed without stopping its instances (graylane's
// shutdown) leaves them running; a new Backend on the same StateDir adopts
// the same PIDs, starts nothing twice, reopens the proxy with the last
// split, and restarts only the instances that died meanwhile.
func TestAdoption(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	rel := demoRelease(t, "adopt", "v1", addr)

	b1, err := wire(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b1.Close() })
	apply(t, b1, rel, traffic.Replicas{"v1": 2})
	setWeights(t, b1.Router, rel, "v1", 100)
	orig := pids(t, waitReady(t, b1, "adopt", traffic.Replicas{"v1": 2}))
	killAtEnd(t, orig)
	b1.Close()
	for id, pid := range orig {
		if !alive(pid) {
			t.Fatalf("%s (pid %d) died when the backend closed", id, pid)
		}
	}
	testenv.Eventually(t, 60*time.Second, "the proxy closed", func() error {
		return testenv.Check(refuses(addr), "%s still accepts connections", addr)
	})

	b2 := newBackend(t, dir)
	ins, err := b2.Observe(context.Background(), "adopt")
	if err != nil {
		t.Fatal(err)
	}
	if got := pids(t, ins); fmt.Sprint(got) != fmt.Sprint(orig) {
		t.Fatalf("right after New: %v, want the adopted %v", got, orig)
	}
	for _, in := range ins {
		if in.Meta["adopted"] != "true" || in.Meta["restarts"] != "0" {
			t.Fatalf("%s: Meta %v, want adopted=true restarts=0", in.ID, in.Meta)
		}
	}
	if got := pids(t, waitReady(t, b2, "adopt", traffic.Replicas{"v1": 2})); fmt.Sprint(got) != fmt.Sprint(orig) {
		t.Fatalf("once ready: %v, want %v", got, orig)
	}
	s, err := b2.Router.Weights(context.Background(), "adopt")
	if err != nil || len(s.Weights) != 1 || s.Weights[0] != (traffic.VersionWeight{Version: "v1", Weight: 100}) {
		t.Fatalf("split after adoption = %+v, %v; want v1 100", s, err)
	}
	if v, _ := get(t, newClient(), "http://"+addr+"/", nil); v != "v1" {
		t.Fatalf("proxy serves %q after adoption", v)
	}
	// Applying the same thing again starts nothing.
	apply(t, b2, rel, traffic.Replicas{"v1": 2})
	if got := pids(t, waitReady(t, b2, "adopt", traffic.Replicas{"v1": 2})); fmt.Sprint(got) != fmt.Sprint(orig) {
		t.Fatalf("after re-applying: %v, want %v", got, orig)
	}
	for id := range orig {
		if n := startsLogged(t, dir, "adopt", id); n != 1 {
			t.Fatalf("%s was started %d times, want once", id, n)
		}
	}

	// One instance dies while no backend runs: the next one restarts it
	// and adopts the other.
	b2.Close()
	kill(t, orig["adopt-v1-1"])
	b3 := newBackend(t, dir)
	got := pids(t, waitReady(t, b3, "adopt", traffic.Replicas{"v1": 2}))
	if got["adopt-v1-0"] != orig["adopt-v1-0"] {
		t.Fatalf("the live instance was not adopted: pid %d, want %d", got["adopt-v1-0"], orig["adopt-v1-0"])
	}
	if got["adopt-v1-1"] == orig["adopt-v1-1"] {
		t.Fatalf("the dead instance was not restarted")
	}
	if n := startsLogged(t, dir, "adopt", "adopt-v1-0"); n != 1 {
		t.Fatalf("adopt-v1-0 was started %d times, want once", n)
	}
}

// killAtEnd kills the processes the test adopted should the test fail
// before a backend stopped them.
func killAtEnd(t *testing.T, pids map[string]int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			if alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// startsLogged counts the starts graylane logged for an instance.
func startsLogged(t testing.TB, dir, app, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "apps", app, "logs", id+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "graylane: starting "+id)
}

const helperEnv = "GRAYLANE_PROCESS_TEST_HELPER_STATE"

// helperMain is a stand-in graylane, run by TestAdoptionAfterSIGKILL in a
// child process: it applies two instances, reports their pids and waits to
// be killed.
func helperMain(dir string) int {
	b, err := wire(process.Config{StateDir: dir, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin, addr := os.Getenv("HELPER_BIN"), os.Getenv("HELPER_PROXY")
	rel := &spec.Release{App: "killed", Version: "v1", Backend: spec.Backend{Type: spec.BackendProcess, Process: &spec.ProcessBackend{
		Command: []string{bin, "--version", "{{.Version}}", "--addr", "{{.Addr}}"},
		Proxy:   addr,
	}}, Health: spec.Health{Interval: spec.D(100 * time.Millisecond)}}
	ctx := context.Background()
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 2}, adapters.NoStep); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b.Router.SetWeights(ctx, rel, traffic.Split{Weights: []traffic.VersionWeight{{Version: "v1", Weight: 100}}})
	for {
		ins, _ := b.Observe(ctx, "killed")
		ready := 0
		var ps []string
		for _, in := range ins {
			if in.Ready {
				ready++
				ps = append(ps, in.ID+"="+in.Meta["pid"])
			}
		}
		if ready == 2 {
			fmt.Println("READY " + strings.Join(ps, " "))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {} // until SIGKILL
}

// TestAdoptionAfterSIGKILL: graylane is SIGKILLed; its instances (in their
// own process groups) survive, and the next Backend adopts them.
func TestAdoptionAfterSIGKILL(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, "HELPER_BIN="+demoBin, "HELPER_PROXY="+addr)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	var ready string
	select {
	case ready = <-line:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the helper graylane never reported ready instances")
	}
	orig := map[string]int{}
	for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(ready), "READY")) {
		id, pid, _ := strings.Cut(f, "=")
		orig[id], _ = strconv.Atoi(pid)
	}
	if len(orig) != 2 {
		t.Fatalf("helper reported %q", ready)
	}
	killAtEnd(t, orig)
	cmd.Process.Kill() // SIGKILL: no cleanup at all
	cmd.Wait()
	for id, pid := range orig {
		if !alive(pid) {
			t.Fatalf("%s (pid %d) died with graylane", id, pid)
		}
	}

	b := newBackend(t, dir)
	got := pids(t, waitReady(t, b, "killed", traffic.Replicas{"v1": 2}))
	if fmt.Sprint(got) != fmt.Sprint(orig) {
		t.Fatalf("after the restart: %v, want the adopted %v", got, orig)
	}
	for id := range orig {
		if n := startsLogged(t, dir, "killed", id); n != 1 {
			t.Fatalf("%s was started %d times, want once", id, n)
		}
	}
	if v, _ := get(t, newClient(), "http://"+addr+"/", nil); v != "v1" {
		t.Fatalf("reopened proxy serves %q", v)
	}
}

func TestSetWeightsBeforeApplyOpensProxy(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	addr := freeAddr(t)
	rel := demoRelease(t, "early", "v1", addr)
	setWeights(t, b.Router, rel, "v1", 100)
	resp, err := newClient().Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("the proxy does not listen after SetWeights: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with no instance the proxy answers %s, want 503", resp.Status)
	}
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	waitReady(t, b, "early", traffic.Replicas{"v1": 1})
	if v, _ := get(t, newClient(), "http://"+addr+"/", nil); v != "v1" {
		t.Fatalf("proxy serves %q", v)
	}
}

func TestForget(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	b := newBackend(t, dir)
	addr := freeAddr(t)
	rel := demoRelease(t, "bye", "v1", addr)
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	pid := pidOf(t, waitReady(t, b, "bye", traffic.Replicas{"v1": 1})[0])
	if err := b.Forget(context.Background(), "bye"); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("Forget left the instance running")
	}
	if !refuses(addr) {
		t.Fatal("Forget left the proxy listening")
	}
	if ins, err := b.Observe(context.Background(), "bye"); err != nil || len(ins) != 0 {
		t.Fatalf("Observe after Forget = %v, %v", ins, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "apps", "bye", "app.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("app state survives Forget: %v", err)
	}
}

func TestApplyRejects(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	rel := demoRelease(t, "rej", "v1", "")
	for _, c := range []struct {
		rel  *spec.Release
		want traffic.Replicas
		is   error
	}{
		{rel, traffic.Replicas{"v 1": 1}, spec.ErrInvalid},
		{rel, traffic.Replicas{"v1": -1}, spec.ErrInvalid},
		{&spec.Release{App: "rej", Version: "v1", Backend: spec.Backend{Type: spec.BackendSSH}}, traffic.Replicas{"v1": 1}, adapters.ErrUnsupported},
	} {
		if err := b.Apply(context.Background(), c.rel, c.want, adapters.NoStep); !errors.Is(err, c.is) || !strings.Contains(err.Error(), "rej") {
			t.Errorf("Apply(%v) = %v, want %v naming the app", c.want, err, c.is)
		}
	}
	if ins, _ := b.Observe(context.Background(), "rej"); len(ins) != 0 {
		t.Fatalf("rejected Applies started %v", ins)
	}
}

// TestLoadWhileScalingAndShifting drives steady traffic through the proxy
// while versions scale up and down and the split moves: not one request
// fails, and each measured split is within 4 points of its weights.
func TestLoadWhileScalingAndShifting(t *testing.T) {
	testenv.IntegrationTest(t)
	b := newBackend(t, t.TempDir())
	addr := freeAddr(t)
	router := b.Router
	v1, v2 := demoRelease(t, "load", "v1", addr), demoRelease(t, "load", "v2", addr)
	apply(t, b, v1, traffic.Replicas{"v1": 2})
	waitReady(t, b, "load", traffic.Replicas{"v1": 2})
	setWeights(t, router, v1, "v1", 100)

	const perPhase = 2000
	const tolerance = 4.0
	l := loadgen.Start(t, loadgen.Config{URL: "http://" + addr + "/", Workers: 8, Timeout: 30 * time.Second})
	measure := func(phase string, wantV2 float64) {
		t.Helper()
		counts := l.Measure(t, perPhase, 3*time.Minute, 100)
		total := counts["v1"] + counts["v2"]
		share := 100 * float64(counts["v2"]) / float64(total)
		t.Logf("%s: %d requests, v2 %.1f%% (want %.0f%%) %v", phase, total, share, wantV2, counts)
		if share < wantV2-tolerance || share > wantV2+tolerance {
			t.Errorf("%s: v2 got %.1f%% of %d requests, want %.0f%% ± %.0f", phase, share, total, wantV2, tolerance)
		}
	}
	measure("v1 only", 0)

	apply(t, b, v2, traffic.Replicas{"v1": 2, "v2": 1})
	waitReady(t, b, "load", traffic.Replicas{"v1": 2, "v2": 1})
	setWeights(t, router, v2, "v2", 20, "v1", 80)
	measure("canary 20%", 20)

	apply(t, b, v2, traffic.Replicas{"v1": 2, "v2": 2})
	waitReady(t, b, "load", traffic.Replicas{"v1": 2, "v2": 2})
	setWeights(t, router, v2, "v2", 50, "v1", 50)
	measure("canary 50%", 50)

	apply(t, b, v2, traffic.Replicas{"v1": 1, "v2": 2}) // v1 drains under load
	setWeights(t, router, v2, "v2", 80, "v1", 20)
	waitReady(t, b, "load", traffic.Replicas{"v1": 1, "v2": 2})
	measure("canary 80%, v1 scaled down", 80)

	setWeights(t, router, v2, "v2", 100, "v1", 0)
	apply(t, b, v2, traffic.Replicas{"v2": 3}) // v1 gone, v2 up, under load
	waitReady(t, b, "load", traffic.Replicas{"v2": 3})
	measure("promoted", 100)

	res := l.Stop()
	total := res.OK + res.Failed
	t.Logf("%d requests in %s (%.0f/s), %d failed", total, res.Elapsed, float64(total)/res.Elapsed.Seconds(), res.Failed)
	if res.Failed != 0 {
		t.Fatalf("%d of %d requests failed, first errors: %v", res.Failed, total, res.Errors)
	}
}

// TestStateDirLocked: a second Backend on a StateDir in use is refused
// (it would start every slot again); once the first closes, it may.
func TestStateDirLocked(t *testing.T) {
	dir := t.TempDir()
	b1, err := process.New(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := process.New(testConfig(t, dir)); !errors.Is(err, process.ErrStateDirInUse) {
		t.Fatalf("second New on a state dir in use = %v, want ErrStateDirInUse", err)
	}
	b1.Close()
	newBackend(t, dir)
}

// TestAdoptsInstanceWithoutRecordedPid: graylane died between writing an
// instance's intent record and its pid. The next Backend finds the process
// by the GRAYLANE_INSTANCE marker in its environment and adopts it.
func TestAdoptsInstanceWithoutRecordedPid(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	rel := demoRelease(t, "intent", "v1", "")
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	argv := []string{demoBin, "--version", "v1", "--addr", addr}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "GRAYLANE_INSTANCE=intent-v1-0.abc123")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	killAtEnd(t, map[string]int{"intent-v1-0": cmd.Process.Pid})

	writeFile := func(path string, v any) {
		b, _ := json.Marshal(v)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(filepath.Join(dir, "apps", "intent", "app.json"), map[string]any{
		"release": rel, "replicas": map[string]int{"v1": 1},
	})
	writeFile(filepath.Join(dir, "apps", "intent", "instances", "intent-v1-0.json"), map[string]any{
		"id": "intent-v1-0", "app": "intent", "version": "v1", "slot": 0, "pid": 0,
		"port": port, "addr": addr, "argv": argv, "nonce": "abc123",
		"startedAt": time.Now(), "log": filepath.Join(dir, "apps", "intent", "logs", "intent-v1-0.log"),
	})

	b := newBackend(t, dir)
	in := waitReady(t, b, "intent", traffic.Replicas{"v1": 1})[0]
	if pidOf(t, in) != cmd.Process.Pid || in.Meta["adopted"] != "true" {
		t.Fatalf("instance %s pid %s adopted=%s, want the running pid %d adopted", in.ID, in.Meta["pid"], in.Meta["adopted"], cmd.Process.Pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("StopAll did not stop the adopted process")
	}
}

// Instances do not inherit graylane's own configuration (GRAYLANE_*
// variables: API tokens, centre passwords); the spec's env still reaches
// them, and so does the rest of the environment.
func TestInstancesDoNotInheritGraylaneConfig(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Setenv("GRAYLANE_HTTP_TOKEN", "s3cret")
	t.Setenv("DEMO_INHERITED", "yes")
	b := newBackend(t, t.TempDir())
	rel := demoRelease(t, "envs", "v1", "")
	rel.Backend.Process.Env = map[string]string{"GRAYLANE_WANTED": "given"}
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	in := waitReady(t, b, "envs", traffic.Replicas{"v1": 1})[0]

	resp, err := newClient().Get("http://" + in.Addr + "/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct{ PID int }
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.PID == 0 {
		t.Fatalf("info: %+v, %v", info, err)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", info.PID))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(raw), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if v, ok := env["GRAYLANE_HTTP_TOKEN"]; ok {
		t.Errorf("the instance inherited GRAYLANE_HTTP_TOKEN=%q", v)
	}
	if env["GRAYLANE_WANTED"] != "given" || env["DEMO_INHERITED"] != "yes" {
		t.Errorf("env: GRAYLANE_WANTED=%q DEMO_INHERITED=%q, want given and yes", env["GRAYLANE_WANTED"], env["DEMO_INHERITED"])
	}
	if _, ok := env["GRAYLANE_INSTANCE"]; !ok {
		t.Error("no GRAYLANE_INSTANCE marker: adoption after a crash needs it")
	}
}
