package graylanetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"gopkg.in/yaml.v3"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/testsupport/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries builds bin/graylane and bin/demoapp once per test binary and
// returns the directory holding them.
func Binaries(t testing.TB) string {
	t.Helper()
	testenv.AssertIntegrationTest(t, "the graylane binary")
	buildOnce.Do(func() {
		binDir, buildErr = testenv.ProcessTempDir("graylane-e2e-bin-")
		if buildErr != nil {
			return
		}
		root := testenv.RepoRoot(t)
		for _, p := range []string{"graylane", "demoapp"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, p), "./cmd/"+p)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build ./cmd/%s: %v\n%s", p, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build graylane: %v", buildErr)
	}
	return binDir
}

// Options configures Start.
type Options struct {
	// Config is merged over the generated config (keys as in README, nested
	// maps, e.g. {"source": {"type": "nacos"}, "nacos": {...}}).
	Config map[string]any
	// Env is extra environment for the graylane process.
	Env []string
	// Bin is the directory holding the graylane and demoapp to run
	// (default: this tree's, from Binaries; ReleaseBinaries for an earlier
	// release).
	Bin string
}

// Graylane is a running graylane process.
type Graylane struct {
	t        testing.TB
	Dir      string // data dir and working dir
	Bin      string // directory with graylane and demoapp
	APIURL   string
	EtcdAddr string
	config   string
	env      []string
	cmd      *exec.Cmd
	logPath  string
	waitErr  chan error
	etcd     *clientv3.Client
	starts   int
}

// Start runs graylane with embedded etcd on free ports in a fresh
// directory and waits until /readyz answers 200.
func Start(t testing.TB, opts Options) *Graylane {
	t.Helper()
	testenv.AssertIntegrationTest(t, "the graylane binary")
	bin := opts.Bin
	if bin == "" {
		bin = Binaries(t)
	}
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	g := &Graylane{t: t, Dir: dir, Bin: bin, env: opts.Env}
	t.Cleanup(g.cleanup)
	for attempt := 1; ; attempt++ {
		g.configure(opts)
		err := g.tryStart("/readyz")
		if err == nil {
			return g
		}
		// free ports are picked, then bound by graylane: another process
		// may take one in between
		if attempt < 3 && strings.Contains(g.LogTail(40), "address already in use") {
			t.Logf("graylane start %d: a port was taken meanwhile; starting again on other ports", attempt)
			continue
		}
		t.Fatalf("%v", err)
	}
}

// configure picks free ports and writes graylane's config file.
func (g *Graylane) configure(opts Options) {
	t := g.t
	httpPort := testenv.FreePort(t)
	g.APIURL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	g.EtcdAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := map[string]any{
		"http": map[string]any{"addr": fmt.Sprintf("127.0.0.1:%d", httpPort)},
		"data": map[string]any{"dir": filepath.Join(g.Dir, "data")},
		"log":  map[string]any{"level": "debug"},
		"etcd": map[string]any{"embedded": map[string]any{
			"clientAddr": g.EtcdAddr,
			"peerAddr":   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		}},
		"engine": map[string]any{"resync": "2s"},
	}
	merge(cfg, opts.Config)
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.config = filepath.Join(g.Dir, "graylane.yaml")
	if err := os.WriteFile(g.config, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func (g *Graylane) start() { g.startWaiting("/readyz") }

func (g *Graylane) startWaiting(path string) {
	g.t.Helper()
	if err := g.tryStart(path); err != nil {
		g.t.Fatalf("%v", err)
	}
}

// tryStart starts graylane and waits until path answers 200; it returns
// an error (with the log's tail) when graylane exits first.
func (g *Graylane) tryStart(path string) error {
	g.t.Helper()
	g.starts++
	g.logPath = filepath.Join(g.Dir, fmt.Sprintf("graylane-%d.log", g.starts))
	logf, err := os.Create(g.logPath)
	if err != nil {
		g.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(g.Bin, "graylane"), "serve", "--config", g.config)
	cmd.Dir = g.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), g.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("start graylane: %v", err)
	}
	g.cmd = cmd
	g.waitErr = make(chan error, 1)
	go func() { g.waitErr <- cmd.Wait(); logf.Close() }()
	var exited error
	testenv.Eventually(g.t, 60*time.Second, "graylane "+path+" answers 200", func() error {
		select {
		case err := <-g.waitErr:
			g.cmd = nil // its exit is read: nothing may wait for it again
			exited = fmt.Errorf("graylane exited during start-up: %v\n%s", err, g.LogTail(40))
			return nil
		default:
		}
		resp, err := http.Get(g.APIURL + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return testenv.Check(resp.StatusCode == 200, "%s", resp.Status) // the log tail follows at cleanup
	})
	return exited
}

// Kill sends SIGKILL to graylane (only graylane: the instances it started
// keep running, as they would in production) and waits for it to die.
func (g *Graylane) Kill() {
	g.t.Helper()
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.waitErr
	g.cmd = nil
	if g.etcd != nil {
		g.etcd.Close()
		g.etcd = nil
	}
}

// Pause stops graylane with SIGSTOP (as a long GC pause, a frozen VM or
// a debugger would); Resume continues it with SIGCONT.
func (g *Graylane) Pause() {
	g.t.Helper()
	if g.cmd != nil {
		if err := g.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			g.t.Fatalf("SIGSTOP graylane: %v", err)
		}
	}
}

// Resume continues a paused graylane (SIGCONT).
func (g *Graylane) Resume() {
	g.t.Helper()
	if g.cmd != nil {
		if err := g.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			g.t.Fatalf("SIGCONT graylane: %v", err)
		}
	}
}

// Stop sends SIGTERM to graylane (a graceful stop, as Ctrl-C) and waits
// for it to exit.
func (g *Graylane) Stop() { _ = g.StopStatus() }

// StopStatus is Stop that returns how graylane exited (nil: status 0).
func (g *Graylane) StopStatus() error {
	g.t.Helper()
	if g.cmd == nil {
		return nil
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-g.waitErr:
	case <-time.After(60 * time.Second):
		g.t.Fatalf("graylane did not exit within 60s of SIGTERM\n%s", g.LogTail(40))
	}
	g.cmd = nil
	if g.etcd != nil {
		g.etcd.Close()
		g.etcd = nil
	}
	return err
}

// Restart starts graylane again on the same data directory and ports.
func (g *Graylane) Restart() {
	g.t.Helper()
	g.start()
}

// Upgrade stops graylane gracefully (SIGTERM) and starts the graylane in
// bin (a directory as Options.Bin) on the same data directory, config and
// ports: a one-replica upgrade (or downgrade) as an operator does it.
func (g *Graylane) Upgrade(bin string) {
	g.t.Helper()
	g.Stop()
	link := filepath.Join(g.Dir, "bin")
	if err := os.Remove(link); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Symlink(bin, link); err != nil {
		g.t.Fatal(err)
	}
	g.Bin = bin
	g.start()
}

// RestartExpectingExit starts graylane again on the same data directory
// and waits (up to within) for it to exit by itself, as it must when it
// refuses to run; it returns the exit code (the log is in Log).
func (g *Graylane) RestartExpectingExit(within time.Duration) int {
	g.t.Helper()
	g.starts++
	g.logPath = filepath.Join(g.Dir, fmt.Sprintf("graylane-%d.log", g.starts))
	logf, err := os.Create(g.logPath)
	if err != nil {
		g.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(g.Bin, "graylane"), "serve", "--config", g.config)
	cmd.Dir = g.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), g.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("start graylane: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return 0
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		g.t.Fatalf("graylane: %v", err)
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		g.t.Fatalf("graylane still running after %v, want it to exit\n%s", within, g.LogTail(30))
	}
	return -1
}

// RestartAlive starts graylane again but waits only for /healthz: for
// tests where a config centre is down, so /readyz rightly says 503.
func (g *Graylane) RestartAlive() {
	g.t.Helper()
	g.startWaiting("/healthz")
}

// Client is an API client.
func (g *Graylane) Client() *client.Client { return client.New(g.APIURL) }

// Etcd is a client of graylane's embedded etcd.
func (g *Graylane) Etcd() *clientv3.Client {
	g.t.Helper()
	if g.etcd == nil {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{g.EtcdAddr}, DialTimeout: 5 * time.Second})
		if err != nil {
			g.t.Fatal(err)
		}
		g.etcd = c
	}
	return g.etcd
}

// PutSpec writes a spec straight into etcd, as etcdctl would.
func (g *Graylane) PutSpec(app, doc string) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.Etcd().Put(ctx, "/graylane/apps/"+app, doc); err != nil {
		g.t.Fatalf("etcd put: %v", err)
	}
}

// LogTail returns the last n lines of every graylane log of this test.
func (g *Graylane) LogTail(n int) string {
	var b strings.Builder
	for i := 1; i <= g.starts; i++ {
		data, _ := os.ReadFile(filepath.Join(g.Dir, fmt.Sprintf("graylane-%d.log", i)))
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- graylane log %d (last %d lines)\n%s\n", i, n, strings.Join(lines, "\n"))
	}
	return b.String()
}

// LastLog returns the whole log of the latest run.
func (g *Graylane) LastLog() string {
	data, _ := os.ReadFile(filepath.Join(g.Dir, fmt.Sprintf("graylane-%d.log", g.starts)))
	return string(data)
}

// Log returns the whole log of every run so far.
func (g *Graylane) Log() string {
	var b bytes.Buffer
	for i := 1; i <= g.starts; i++ {
		data, _ := os.ReadFile(filepath.Join(g.Dir, fmt.Sprintf("graylane-%d.log", i)))
		b.Write(data)
	}
	return b.String()
}

// Starts counts, per process-backend slot (instance ID), how many times
// graylane started a process for it, from the instance logs.
func (g *Graylane) Starts(app string) map[string]int {
	out := map[string]int{}
	logs, _ := filepath.Glob(filepath.Join(g.Dir, "data", "process", "apps", app, "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		id := strings.TrimSuffix(filepath.Base(l), ".log")
		out[id] = strings.Count(string(data), "graylane: starting "+id+":")
	}
	return out
}

// ProxyPID is the pid of the built-in proxy's process (`graylane proxy`,
// which outlives graylane), 0 when none runs.
func (g *Graylane) ProxyPID() int { return proxyPID(filepath.Join(g.Dir, "data", "proxy")) }

// proxyPID is the pid of the `graylane proxy` serving dir, from its lock
// file; 0 when none runs.
func proxyPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "proxy.lock"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return 0
	}
	// the pid may be stale (the proxy died, the pid was reused): only a
	// `graylane proxy` of this directory counts
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "proxy\x00--dir\x00"+dir) {
		return 0
	}
	return pid
}

// KillProxies stops every `graylane proxy` serving a directory under dir:
// they outlive graylane by design, so a test that started graylane must
// stop them too. It looks at every process's command line rather than at
// the proxies' lock files, because a proxy graylane started just before
// it was killed may not have written its lock file yet.
func KillProxies(dir string) {
	dir = filepath.Clean(dir) + string(filepath.Separator)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		cmdline, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for i := 0; i+2 < len(args); i++ {
			if args[i] == "proxy" && args[i+1] == "--dir" && strings.HasPrefix(args[i+2], dir) {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				break
			}
		}
	}
}

func (g *Graylane) cleanup() {
	if g.t.Failed() {
		g.t.Logf("%s", g.LogTail(60))
		if b, err := os.ReadFile(filepath.Join(g.Dir, "data", "proxy", "proxy.log")); err == nil {
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			g.t.Logf("--- proxy log (last %d lines)\n%s", len(lines), strings.Join(lines, "\n"))
		}
	}
	g.Kill()
	// the proxy processes outlive graylane by design (one per environment)
	KillProxies(g.Dir)
	data := filepath.Join(g.Dir, "data")
	// stop every instance this graylane started: they run in their own
	// process groups and would outlive the test
	files, _ := filepath.Glob(filepath.Join(data, "process", "apps", "*", "instances", "*.json"))
	more, _ := filepath.Glob(filepath.Join(data, "envs", "*", "process", "apps", "*", "instances", "*.json"))
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var rec struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(data, &rec) == nil && rec.PID > 0 {
			_ = syscall.Kill(rec.PID, syscall.SIGKILL)
		}
	}
}

// Sorted returns the keys of m sorted.
func Sorted[V any](m map[string]V) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}
