package proxyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of SupervisorConfig.
const (
	DefaultCheckEvery   = time.Second
	DefaultStartTimeout = 15 * time.Second
	// failuresBeforeRestart is how many health checks in a row must fail
	// before the supervisor replaces the proxy process.
	failuresBeforeRestart = 3
)

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// Dir is the proxy process's directory (required).
	Dir string
	// Command starts the proxy process (default: this executable with
	// "proxy --dir Dir" and Args).
	Command []string
	// Args are added to the default Command (e.g. "--procs", "2").
	Args []string
	// Env is added to the proxy process's environment, which is
	// graylane's without its GRAYLANE_* variables.
	Env []string
	// CheckEvery is the health check interval (default 1s).
	CheckEvery time.Duration
	// StartTimeout bounds the wait for a started process's socket (15s).
	StartTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Supervisor keeps one proxy process running for graylane: it adopts the
// one that answers on the control socket (graylane restarted; the proxy
// kept serving), or starts one, and replaces it if it stops answering.
// Close stops supervising and leaves the proxy running.
type Supervisor struct {
	cfg    SupervisorConfig
	log    *slog.Logger
	client *Client

	mu  sync.Mutex
	pid int

	cancel context.CancelFunc
	done   chan struct{}
}

// Supervise adopts or starts the proxy process of cfg.Dir and watches it
// until Close. It returns once the proxy answers on its control socket.
func Supervise(ctx context.Context, cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Dir == "" {
		return nil, errors.New("proxy supervisor: Dir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("proxy supervisor: %w", err)
		}
		cfg.Command = append([]string{exe, "proxy", "--dir", cfg.Dir}, cfg.Args...)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("proxy supervisor: %w", err)
	}
	s := &Supervisor{cfg: cfg, log: cfg.Logger.With("component", "proxy-supervisor"), client: NewClient(filepath.Join(cfg.Dir, SocketName)), done: make(chan struct{})}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	pid, version, err := s.client.Health(hctx)
	cancel()
	if err == nil {
		s.setPID(pid)
		s.log.Info("adopted the running proxy process", "pid", pid, "version", version)
	} else if err := s.start(ctx); err != nil {
		return nil, err
	}
	wctx, wcancel := context.WithCancel(context.Background())
	s.cancel = wcancel
	go s.watch(wctx)
	return s, nil
}

// Client is the proxy.DataPlane of the supervised process.
func (s *Supervisor) Client() *Client { return s.client }

// PID is the supervised process's pid.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

func (s *Supervisor) setPID(pid int) {
	s.mu.Lock()
	s.pid = pid
	s.mu.Unlock()
}

// start runs a new proxy process in its own session (so nothing aimed at
// graylane's process group reaches it), with its output appended to
// Dir/proxy.log, and waits until it answers.
func (s *Supervisor) start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(s.cfg.Dir, LogName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("proxy supervisor: log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(childEnv(), s.cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("proxy supervisor: start %s: %w", strings.Join(s.cfg.Command, " "), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reap it if it dies while graylane lives
	deadline := time.Now().Add(s.cfg.StartTimeout)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		pid, _, err := s.client.Health(hctx)
		cancel()
		if err == nil {
			s.setPID(pid)
			s.log.Info("started the proxy process", "pid", pid, "dir", s.cfg.Dir)
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("proxy supervisor: the proxy process exited at start (%v); see %s", werr, filepath.Join(s.cfg.Dir, LogName))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("proxy supervisor: the proxy process did not answer within %s: %w", s.cfg.StartTimeout, err)
		}
	}
}

// watch replaces the proxy process when it stops answering.
func (s *Supervisor) watch(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.CheckEvery)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		pid, _, err := s.client.Health(hctx)
		cancel()
		if err == nil {
			fails = 0
			s.setPID(pid)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		fails++
		if fails < failuresBeforeRestart {
			continue
		}
		old := s.PID()
		s.log.Error("the proxy process does not answer; replacing it", "pid", old, "err", err)
		if old > 0 && alive(old) {
			_ = syscall.Kill(old, syscall.SIGKILL) // hung: its lock would stop the new one
			waitGone(old, 5*time.Second)
		}
		if err := s.start(ctx); err != nil {
			s.log.Error("restart the proxy process", "err", err)
			continue
		}
		fails = 0
	}
}

// Close stops supervising; the proxy process keeps serving.
func (s *Supervisor) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.client.Close()
	return nil
}

// Stop stops supervising and stops the proxy process (SIGTERM: it lets
// requests in flight finish for a few seconds), waiting for it to exit or
// for ctx to end. The routes file stays.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.Close()
	pid := s.PID()
	if pid <= 0 || !alive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the proxy process %d: %w", pid, err)
	}
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop the proxy process %d: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + fmt.Sprint(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func waitGone(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// childEnv is graylane's environment without its GRAYLANE_* variables (API
// tokens, centre passwords): the proxy process gets its routes, trust
// secrets included, over the control socket.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRAYLANE_") {
			out = append(out, kv)
		}
	}
	return out
}
