package polaris

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

const (
	// readyMarker is what Polaris prints on stdout once every server is up.
	readyMarker = "finish starting server"
	// startTimeout bounds one start; Polaris is normally ready in < 0.5 s.
	startTimeout = 60 * time.Second
	// portAttempts is how often Start retries with fresh ports when a port
	// picked as free was taken before Polaris bound it.
	portAttempts = 3
)

// Server is one Polaris process serving the Nacos protocols on 127.0.0.1,
// with its configuration, bolt store and logs in a private temporary
// directory. Its methods are safe for concurrent use; Restart and Start
// fail the test (t.Fatal), so call them from the test goroutine.
type Server struct {
	t     testing.TB
	bin   string
	dir   string
	conf  string
	ports Ports

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has exited
	out       *outputLog
	startTime time.Duration
}

// Start builds (or reuses) the Polaris binary, starts a fresh server on free
// 127.0.0.1 ports and waits until its Nacos HTTP and gRPC ports accept
// connections. The server is SIGKILLed when the test ends; if the test
// failed, the tails of its output and logs are printed. A binary that
// cannot be built is reported through testenv.Unavailable (a failure under
// GRAYLANE_INTEGRATION=1, a skip otherwise).
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	testenv.AssertIntegrationTest(t, "Polaris (a Nacos server)")
	bin, conf, err := build()
	if err != nil {
		testenv.Unavailable(t, "polaris server binary: %v", err)
	}
	t.Logf("polaris: binary ready after %v (%s)", buildTime.Round(time.Millisecond), bin)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			s.dumpLogs()
		}
	})
	for attempt := 1; ; attempt++ {
		s.ports, err = freePorts(t)
		if err != nil {
			t.Fatalf("polaris: pick ports: %v", err)
		}
		s.conf, err = writeConf(conf, dir, s.ports, o)
		if err != nil {
			t.Fatalf("polaris: write config: %v", err)
		}
		err = s.start()
		if err == nil {
			break
		}
		if attempt < portAttempts && errors.Is(err, errPortTaken) {
			t.Logf("polaris: attempt %d: %v; retrying with other ports", attempt, err)
			_ = os.RemoveAll(filepath.Join(dir, "data"))
			_ = os.RemoveAll(filepath.Join(dir, "log"))
			continue
		}
		t.Fatalf("polaris: start: %v", err)
	}
	t.Logf("polaris: ready in %v, nacos http %s, grpc %d, dir %s",
		s.StartTime().Round(time.Millisecond), s.NacosAddr(), s.ports.NacosGRPC(), dir)
	return s
}

// NacosAddr is the Nacos HTTP address, "127.0.0.1:port". nacos-sdk-go takes
// this port and derives the gRPC port (+1000) itself.
func (s *Server) NacosAddr() string { return net.JoinHostPort(s.Host(), strconv.Itoa(s.ports.Nacos)) }

// Host is the address the server listens on: 127.0.0.1.
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the Nacos HTTP port.
func (s *Server) Port() int { return s.ports.Nacos }

// GRPCPort is the Nacos gRPC port, always Port()+1000.
func (s *Server) GRPCPort() int { return s.ports.NacosGRPC() }

// Ports lists every port the server listens on.
func (s *Server) Ports() Ports { return s.ports }

// Dir is the server's working directory: conf/, data/ (the bolt store),
// log/, polaris.out (stdout and stderr of every run) and the console
// client's files.
func (s *Server) Dir() string { return s.dir }

// StartTime is how long the latest start took until the ports accepted.
func (s *Server) StartTime() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startTime
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill SIGKILLs the server and waits for it to exit (SIGTERM would take ~6 s:
// Polaris sleeps before shutting down). Clients see the connection drop, as
// with a crashed server. Kill is idempotent.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart kills the server if it runs and starts it again on the same ports
// with the same store, so data written before survives, as with a Nacos
// restart. It fails the test if the server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	for attempt := 1; ; attempt++ {
		err := s.start()
		if err == nil {
			break
		}
		// A client's ephemeral socket may briefly hold one of the ports.
		if attempt < portAttempts && errors.Is(err, errPortTaken) {
			s.t.Logf("polaris: restart attempt %d: %v; retrying", attempt, err)
			time.Sleep(500 * time.Millisecond) // let the transient socket go
			continue
		}
		s.t.Fatalf("polaris: restart: %v", err)
	}
	s.t.Logf("polaris: restarted in %v", s.StartTime().Round(time.Millisecond))
}

// start launches the process and waits until it is ready.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	out, err := openOutputLog(filepath.Join(s.dir, "polaris.out"))
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "start", "-c", s.conf)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = procAttr()
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	s.cmd, s.done, s.out = cmd, done, out

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err = testenv.Poll(ctx, func() error {
		select {
		case <-done:
			s.cmd = nil
			if s.portTaken() {
				return testenv.Stop(fmt.Errorf("%w: polaris exited during start (%v)", errPortTaken, cmd.ProcessState))
			}
			return testenv.Stop(fmt.Errorf("polaris exited during start (%v):\n%s", cmd.ProcessState, out.Tail(30)))
		default:
		}
		return testenv.Check(out.Ready() && canDial(s.ports.Nacos) && canDial(s.ports.NacosGRPC()), "polaris not ready after %v:\n%s", startTimeout, out.Tail(30))
	})
	if err != nil {
		if s.cmd != nil {
			s.killLocked()
		}
		return err
	}
	s.startTime = time.Since(begin)
	return nil
}

// errPortTaken: a port picked as free was taken before Polaris bound it
// (by another process, or by some client's ephemeral socket).
var errPortTaken = errors.New("a listener port was taken")

// portTaken reports whether the last run failed to bind a port. Polaris
// logs a listener's failure to its log files, then stops.
func (s *Server) portTaken() bool {
	files, _ := filepath.Glob(filepath.Join(s.dir, "log", "runtime", "*.log"))
	files = append(files, filepath.Join(s.dir, "polaris.out"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("address already in use")) {
			return true
		}
	}
	return false
}

func canDial(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Ports are picked below Linux's ephemeral range (32768-60999 by default),
// where no client socket can take one between the pick and Polaris' bind.
const (
	portLow  = 15000
	portHigh = 31700 // exclusive; +1000 for the Nacos gRPC port stays below 32768
)

// freePorts picks the six listener ports, making sure the Nacos gRPC port
// (Nacos HTTP + 1000) is free too and no port repeats.
func freePorts(t testing.TB) (Ports, error) {
	seen := map[int]bool{}
	free := func(p int) bool {
		if seen[p] {
			return false
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	pick := func(pair bool) (int, error) {
		for range 200 {
			p := portLow + rand.IntN(portHigh-portLow)
			if free(p) && (!pair || free(p+1000)) {
				seen[p] = true
				if pair {
					seen[p+1000] = true
				}
				return p, nil
			}
		}
		return 0, fmt.Errorf("no free port in [%d, %d)", portLow, portHigh)
	}
	var p Ports
	var err error
	if p.Nacos, err = pick(true); err != nil {
		return p, err
	}
	for _, f := range []*int{&p.Eureka, &p.HTTP, &p.ServiceGRPC, &p.ConfigGRPC, &p.XDS} {
		if *f, err = pick(false); err != nil {
			return p, err
		}
	}
	return p, nil
}

// logFiles are the Polaris logs worth showing when a test fails (relative
// to the server's directory).
var logFiles = []string{
	"log/runtime/polaris-default.log",
	"log/runtime/nacos-apiserver.log",
	"log/runtime/nacos-apiserver-error.log",
	"log/runtime/polaris-config.log",
	"log/runtime/polaris-config-error.log",
	"log/runtime/polaris-naming-error.log",
	"log/runtime/polaris-store-error.log",
	"log/runtime/polaris-default-error.log",
}

func (s *Server) dumpLogs() {
	var b strings.Builder
	fmt.Fprintf(&b, "polaris: server dir %s\n--- polaris.out (tail) ---\n%s\n", s.dir, tailFile(filepath.Join(s.dir, "polaris.out"), 30))
	for _, f := range logFiles {
		if t := tailFile(filepath.Join(s.dir, f), 30); t != "" {
			fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", f, t)
		}
	}
	s.t.Log(b.String())
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tailLines(b, n)
}

func tailLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// outputLog appends a process's stdout and stderr to a file and notices the
// ready marker.
type outputLog struct {
	mu    sync.Mutex
	f     *os.File
	line  []byte // unterminated last line, for the marker check
	ready bool
	all   []byte // this run's output, for error messages
}

func openOutputLog(path string) (*outputLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open polaris output log: %w", err)
	}
	fmt.Fprintf(f, "=== start %s ===\n", time.Now().Format(time.RFC3339Nano))
	return &outputLog{f: f}, nil
}

func (o *outputLog) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.all) < 1<<20 {
		o.all = append(o.all, p...)
	}
	if !o.ready {
		o.line = append(o.line, p...)
		if bytes.Contains(o.line, []byte(readyMarker)) {
			o.ready = true
			o.line = nil
		} else if i := bytes.LastIndexByte(o.line, '\n'); i >= 0 {
			o.line = append(o.line[:0], o.line[i+1:]...)
		}
	}
	if o.f != nil {
		_, _ = o.f.Write(p)
	}
	return len(p), nil
}

func (o *outputLog) Ready() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ready
}

func (o *outputLog) Tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return tailLines(o.all, n)
}

func (o *outputLog) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f != nil {
		o.f.Close()
		o.f = nil
	}
}
