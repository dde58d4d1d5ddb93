package dockertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Options tune a private engine.
type Options struct {
	// LiveRestore starts dockerd with --live-restore: containers keep
	// running while the engine is stopped (Stop, then StartAgain).
	LiveRestore bool
}

// Engine is a running private dockerd.
type Engine struct {
	// Dir holds the socket, pid file, data root, exec root and log. It is
	// short (under /tmp) because unix socket paths are limited.
	Dir string
	// Host is the engine's address for clients: unix://{Dir}/d.sock.
	Host string
	// Bridge is the Linux bridge of the engine's default network and
	// Subnet its address range; Pool is where named networks get theirs.
	Bridge, Subnet, Pool string

	opts    Options
	bin     string
	slot    int
	lock    *os.File
	cmd     *exec.Cmd
	waitErr chan error
	cli     *client.Client
}

// Start runs a private dockerd for the test and stops it (and removes
// everything it made) when the test ends. A missing dockerd, or not being
// root, is reported with testenv.Unavailable.
func Start(t testing.TB, opts Options) *Engine {
	t.Helper()
	testenv.LookPath(t, "dockerd")
	e, err := StartEngine(opts)
	if err != nil {
		testenv.Unavailable(t, "private dockerd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd log tail (%s):\n%s", e.LogPath(), e.LogTail(30))
		}
		if err := e.Close(); err != nil {
			t.Errorf("stop private dockerd: %v", err)
		}
	})
	return e
}

// StartEngine runs a private dockerd (for TestMain; Start is the usual
// entry point). The caller must Close it.
func StartEngine(opts Options) (*Engine, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a private dockerd needs root")
	}
	bin, err := lookPath("dockerd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/tmp", "gd")
	if err != nil {
		return nil, err
	}
	e := &Engine{Dir: dir, Host: "unix://" + filepath.Join(dir, "d.sock"), opts: opts, bin: bin}
	if err := e.claimNetwork(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		e.release()
		return nil, err
	}
	if err := e.start(); err != nil {
		e.release()
		return nil, err
	}
	return e, nil
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (make test-deps installs docker.io)", name)
}

// claimNetwork picks a network slot no other private engine on the machine
// holds (a flock held for the engine's life) and creates the engine's own
// bridge: two dockerds sharing docker0 would hand out the same container
// addresses.
func (e *Engine) claimNetwork() error {
	lockDir := filepath.Join(os.TempDir(), "graylane-dockerd-slots")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return err
	}
	used := usedSecondOctets()
	for k := 200; k < 250; k++ {
		if used[k] {
			continue
		}
		f, err := os.OpenFile(filepath.Join(lockDir, strconv.Itoa(k)+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		e.slot, e.lock = k, f
		e.Bridge = fmt.Sprintf("glbr%d", k)
		e.Subnet = fmt.Sprintf("10.%d.255.0/24", k)
		e.Pool = fmt.Sprintf("10.%d.0.0/17", k)
		// a bridge left by a test process that was killed: ours now
		_ = exec.Command("ip", "link", "del", e.Bridge).Run()
		for _, args := range [][]string{
			{"link", "add", "name", e.Bridge, "type", "bridge"},
			{"addr", "add", fmt.Sprintf("10.%d.255.1/24", k), "dev", e.Bridge},
			{"link", "set", e.Bridge, "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				e.release()
				return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return nil
	}
	return errors.New("no free network slot for a private dockerd (50 in use)")
}

// usedSecondOctets returns the k of every 10.k.x.x address on the machine.
func usedSecondOctets() map[int]bool {
	out := map[int]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip := n.IP.To4(); ip != nil && ip[0] == 10 {
				out[int(ip[1])] = true
			}
		}
	}
	return out
}

func (e *Engine) args() []string {
	a := []string{
		"--host", e.Host,
		"--config-file", filepath.Join(e.Dir, "daemon.json"),
		"--data-root", filepath.Join(e.Dir, "root"),
		"--exec-root", filepath.Join(e.Dir, "x"),
		"--pidfile", e.PIDFile(),
		"--storage-driver", "vfs",
		"--iptables=false",
		"--ip-masq=false",
		"--bridge", e.Bridge,
		"--default-address-pool", "base=" + e.Pool + ",size=24",
	}
	if e.opts.LiveRestore {
		a = append(a, "--live-restore")
	}
	return a
}

// PIDFile is dockerd's pid file.
func (e *Engine) PIDFile() string { return filepath.Join(e.Dir, "d.pid") }

// LogPath is dockerd's log (stdout and stderr, appended across restarts).
func (e *Engine) LogPath() string { return filepath.Join(e.Dir, "dockerd.log") }

func (e *Engine) start() error {
	logf, err := os.OpenFile(e.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(e.bin, e.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// its own process group (a Ctrl-C of the test does not hit it first), and
	// SIGTERM when the test binary dies (go test -timeout) so no engine is left
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start dockerd: %w", err)
	}
	e.cmd = cmd
	e.waitErr = make(chan error, 1)
	go func() { e.waitErr <- cmd.Wait(); logf.Close() }()
	if e.cli == nil {
		cli, err := client.NewClientWithOpts(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
		if err != nil {
			e.stop(syscall.SIGKILL)
			return err
		}
		e.cli = cli
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = testenv.Poll(ctx, func() error {
		select {
		case werr := <-e.waitErr:
			e.cmd = nil
			return testenv.Stop(fmt.Errorf("dockerd exited during start-up: %v\n%s", werr, e.LogTail(20)))
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		_, err := e.cli.Ping(pctx)
		return err
	})
	if err != nil && e.cmd != nil {
		e.stop(syscall.SIGKILL)
		return fmt.Errorf("dockerd not answering after 60s: %v\n%s", err, e.LogTail(20))
	}
	return err
}

// Client is an API client of the engine (API version negotiated).
func (e *Engine) Client() *client.Client { return e.cli }

// Running reports whether dockerd runs.
func (e *Engine) Running() bool { return e.cmd != nil }

// Stop stops dockerd (SIGTERM by its pid, SIGKILL after 30s). With
// LiveRestore its containers keep running.
func (e *Engine) Stop() error { return e.stop(syscall.SIGTERM) }

// StartAgain starts dockerd again on the same directories after Stop.
func (e *Engine) StartAgain() error {
	if e.cmd != nil {
		return errors.New("dockerd is running")
	}
	return e.start()
}

func (e *Engine) stop(sig syscall.Signal) error {
	if e.cmd == nil {
		return nil
	}
	pid := e.cmd.Process.Pid
	if b, err := os.ReadFile(e.PIDFile()); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n != pid {
			return fmt.Errorf("pid file says %d, but the dockerd started here is %d", n, pid)
		}
	}
	_ = syscall.Kill(pid, sig)
	select {
	case <-e.waitErr:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-e.waitErr
	}
	e.cmd = nil
	return nil
}

// Close removes every container, stops dockerd, deletes its bridge and
// directories and releases its network slot.
func (e *Engine) Close() error {
	var errs []error
	if e.cmd == nil && e.opts.LiveRestore {
		// containers may still run without their engine: bring it back
		// to remove them
		if err := e.start(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true})
		if err != nil {
			errs = append(errs, fmt.Errorf("list containers: %w", err))
		}
		for _, c := range list {
			if err := e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
			}
		}
		cancel()
	}
	if err := e.stop(syscall.SIGTERM); err != nil {
		errs = append(errs, err)
	}
	if e.cli != nil {
		e.cli.Close()
	}
	e.release()
	return errors.Join(errs...)
}

func (e *Engine) release() {
	if e.Bridge != "" {
		_ = exec.Command("ip", "link", "del", e.Bridge).Run()
	}
	if e.lock != nil {
		e.lock.Close()
	}
	// dockerd leaves mounts under its directories (the data root's bind,
	// the exec root's netns): detach them, deepest first, then remove
	unmountUnder(e.Dir)
	_ = os.RemoveAll(e.Dir)
}

// unmountUnder detaches every mount point at or below dir.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// LogTail returns the last n lines of dockerd's log.
func (e *Engine) LogTail(n int) string {
	data, _ := os.ReadFile(e.LogPath())
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
