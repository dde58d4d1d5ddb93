package proxyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/graylane/graylane/adapters/proxy"
)

// Files of a proxy directory.
const (
	SocketName = "control.sock"
	RoutesName = "routes.json"
	LockName   = "proxy.lock"
	LogName    = "proxy.log"
)

// ErrDirInUse is returned by Serve when another proxy process holds the
// directory.
var ErrDirInUse = errors.New("proxy directory is in use by another proxy process")

// ServeConfig configures the proxy process.
type ServeConfig struct {
	// Dir holds the routes file, the control socket and the lock (required).
	Dir string
	// Version is this build's version, reported by /v1/health.
	Version string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Proxy is the template of every app proxy's configuration.
	Proxy proxy.Config
}

// Serve runs the proxy process until ctx ends: it locks cfg.Dir, restores
// every app's proxy from the routes file (they serve at once), and answers
// the control API on the socket. When ctx ends the proxies stop (requests
// in flight get a few seconds) and the routes file stays for the next
// process.
func Serve(ctx context.Context, cfg ServeConfig) error {
	if cfg.Dir == "" {
		return errors.New("graylane proxy: a state directory is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "proxyd")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("graylane proxy: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	local, err := proxy.NewLocal(proxy.LocalConfig{Proxy: cfg.Proxy, Logger: cfg.Logger, StateFile: filepath.Join(cfg.Dir, RoutesName)})
	if err != nil {
		return fmt.Errorf("graylane proxy: %w", err)
	}
	defer local.Close()
	sock := filepath.Join(cfg.Dir, SocketName)
	os.Remove(sock) // a stale socket of a dead process; the lock says none runs
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("graylane proxy: control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("graylane proxy: control socket: %w", err)
	}
	srv := &http.Server{Handler: Handler(local, cfg.Version), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	apps, _ := local.Apps(ctx)
	log.Info("proxy process serving", "pid", os.Getpid(), "dir", cfg.Dir, "apps", len(apps))
	select {
	case err := <-served:
		return fmt.Errorf("graylane proxy: control socket: %w", err)
	case <-ctx.Done():
	}
	log.Info("proxy process stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// lockDir takes an exclusive flock on dir/proxy.lock for the life of the
// process (the kernel drops it whatever way the process dies).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("graylane proxy: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("graylane proxy: %s (held by pid %s): %w", dir, string(holder), ErrDirInUse)
		}
		return nil, fmt.Errorf("graylane proxy: lock: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
	return f, nil
}
