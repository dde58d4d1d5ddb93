package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Sentinel errors, wrapped with the app and nginx's own message.
var (
	// ErrRejected: `nginx -t` refused the rendered configuration. The
	// previous file was restored and the running nginx was not signalled.
	ErrRejected = errors.New("nginx rejected the configuration")
	// ErrNotVerified: nginx was reloaded but did not serve the new
	// configuration in time. The previous file was restored and reloaded.
	ErrNotVerified = errors.New("nginx did not serve the new configuration")
)

// InstanceSource lists an app's instances; the router turns the ready ones
// with an address into upstream servers. Every adapters.Backend is one.
type InstanceSource interface {
	Observe(ctx context.Context, app string) ([]adapters.Instance, error)
}

// InstancesFunc adapts a function to an InstanceSource, e.g. one that
// resolves the app's backend from its release before observing it.
type InstancesFunc func(ctx context.Context, app string) ([]adapters.Instance, error)

// Observe calls f.
func (f InstancesFunc) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	return f(ctx, app)
}

// Config configures a Router.
type Config struct {
	// Binary is the nginx executable (default: nginx on PATH, else
	// /usr/sbin/nginx).
	Binary string
	// Prefix and ConfFile, if set, are passed as -p and -c to every nginx
	// command, addressing a nginx that is not the system default one.
	Prefix, ConfFile string
	// PIDFile, if set, is read for the master's pid and reloads are sent as
	// SIGHUP to it; otherwise the router runs `nginx -s reload`.
	PIDFile string
	// IncludeDir is the directory graylane owns: it writes {app}.conf there
	// and nothing else. The operator includes IncludeDir/*.conf inside the
	// http block of nginx.conf. Required.
	IncludeDir string
	// StatusAddr (host:port, e.g. 127.0.0.1:18081) is where each app's
	// rendered status server listens; after a reload the router polls it
	// until it answers the new file's digest. Empty disables verification
	// (SetWeights then returns once the reload signal was sent).
	StatusAddr string
	// ErrorLog, if set, is nginx's error log: when a reload does not take,
	// the [emerg]/[alert] lines nginx logged meanwhile go into the error.
	ErrorLog string
	// Instances supplies the upstream servers. Required.
	Instances InstanceSource
	// VerifyTimeout bounds the wait for the reloaded nginx to serve the new
	// file (default 10s).
	VerifyTimeout time.Duration
	// Settle is how long SetWeights keeps waiting after a fresh connection
	// first got the new digest (default 150ms; negative disables). nginx
	// starts the new workers, then sleeps 100ms before telling the old ones
	// to stop accepting (ngx_master_process_cycle's ngx_msleep(100)), so a
	// new worker answering proves only that the old ones stop accepting at
	// most 100ms later. Settle covers that plus their reaction time.
	Settle time.Duration
	// CommandTimeout bounds `nginx -t` and `nginx -s reload` (default 30s).
	CommandTimeout time.Duration
	// Logger receives one line per change (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
}

// Router is the nginx TrafficRouter. It is safe for concurrent use; changes
// are serialised because `nginx -t` checks every app's file at once.
type Router struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client

	mu       sync.Mutex // serialises file changes and reloads (nginx -t reads every file)
	releases map[string]*spec.Release
	apps     map[string]*sync.Mutex // per app: read split, observe, render, install
}

// appLock serialises the changes of one app, so a Sync that read the split
// in force cannot install it over a newer SetWeights.
func (r *Router) appLock(app string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.apps[app]
	if m == nil {
		m = &sync.Mutex{}
		r.apps[app] = m
	}
	return m
}

var (
	_ adapters.TrafficRouter = (*Router)(nil)
	_ adapters.Forgetter     = (*Router)(nil)
)

// New returns a Router. It does not touch nginx.
func New(cfg Config) (*Router, error) {
	if cfg.IncludeDir == "" {
		return nil, errors.New("nginx router: IncludeDir is required")
	}
	if cfg.Instances == nil {
		return nil, errors.New("nginx router: Instances is required (the backend whose ready instances become upstream servers)")
	}
	if cfg.Binary == "" {
		cfg.Binary = "nginx"
		if _, err := exec.LookPath("nginx"); err != nil {
			cfg.Binary = "/usr/sbin/nginx"
		}
	}
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = 10 * time.Second
	}
	if cfg.Settle == 0 {
		cfg.Settle = 150 * time.Millisecond
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 30 * time.Second
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	return &Router{
		cfg:      cfg,
		log:      cfg.Logger.With("router", "nginx"),
		client:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second},
		releases: map[string]*spec.Release{},
		apps:     map[string]*sync.Mutex{},
	}, nil
}

// Path is the include file the router owns for app.
func (r *Router) Path(app string) string { return filepath.Join(r.cfg.IncludeDir, app+".conf") }

// LocationPath is the location snippet the router owns for app: the
// operator's own server block routes with
//
//	location / {
//	    include /etc/nginx/graylane/demo.location;
//	    proxy_pass http://$graylane_demo;
//	}
func (r *Router) LocationPath(app string) string {
	return filepath.Join(r.cfg.IncludeDir, app+".location")
}

// Weights returns the split recorded in the app's include file (empty if
// there is none). It reads the file only.
func (r *Router) Weights(ctx context.Context, app string) (traffic.Split, error) {
	if err := ctx.Err(); err != nil {
		return traffic.Split{}, err
	}
	if err := spec.CheckApp(app); err != nil {
		return traffic.Split{}, fmt.Errorf("nginx weights of app %q: %w", app, err)
	}
	b, err := os.ReadFile(r.Path(app))
	if errors.Is(err, os.ErrNotExist) {
		return traffic.Split{}, nil
	}
	if err != nil {
		return traffic.Split{}, fmt.Errorf("nginx weights of app %s: %w", app, err)
	}
	s, _, err := ParseHeader(b)
	if err != nil {
		return traffic.Split{}, fmt.Errorf("nginx weights of app %s: %s: %w", app, r.Path(app), err)
	}
	return s, nil
}

// SetWeights renders the split with the app's ready instances, validates it
// with `nginx -t`, reloads nginx gracefully and waits until nginx serves
// it. Calling it again with the same split and the same ready instances
// changes nothing. On any failure the previous file is back in place and
// the error carries nginx's message.
func (r *Router) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rel == nil {
		return errors.New("nginx set weights: nil release")
	}
	if err := traffic.ValidateSplit(s); err != nil {
		return fmt.Errorf("nginx set weights of app %s: %w", rel.App, err)
	}
	al := r.appLock(rel.App)
	al.Lock()
	defer al.Unlock()
	r.mu.Lock()
	r.releases[rel.App] = rel
	r.mu.Unlock()
	return r.render(ctx, rel, s, "set weights")
}

// Sync re-renders the app's split in force with its current ready
// instances: wire it to the backend's adapters.Notifier so upstream servers
// follow instances that start, stop or change version. It does nothing for
// an app without a file or not yet seen by SetWeights in this process.
func (r *Router) Sync(ctx context.Context, app string) error {
	al := r.appLock(app)
	al.Lock()
	defer al.Unlock()
	r.mu.Lock()
	rel := r.releases[app]
	r.mu.Unlock()
	if rel == nil {
		return nil
	}
	s, err := r.Weights(ctx, app)
	if err != nil {
		return err
	}
	if len(s.Weights) == 0 && s.Preview == "" {
		return nil
	}
	return r.render(ctx, rel, s, "sync")
}

func (r *Router) render(ctx context.Context, rel *spec.Release, s traffic.Split, step string) error {
	insts, err := r.cfg.Instances.Observe(ctx, rel.App)
	if err != nil {
		return fmt.Errorf("nginx %s of app %s: list instances: %w", step, rel.App, err)
	}
	in := Input{App: rel.App, Split: s, Instances: insts, Traffic: rel.Traffic, StatusAddr: r.cfg.StatusAddr}
	if rel.Gray != nil {
		in.Salt = rel.Gray.Salt
	}
	if rel.Traffic != nil {
		if in.TrustSecret, err = rel.Traffic.Trust.Secret(os.Getenv); err != nil {
			return fmt.Errorf("nginx %s of app %s: %w", step, rel.App, err)
		}
	}
	out, err := Render(in)
	if err != nil {
		return fmt.Errorf("nginx %s of app %s: render: %w", step, rel.App, err)
	}
	digest := out.Digest
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.install(ctx, rel.App, out, probeOf(in))
	if err != nil {
		return fmt.Errorf("nginx %s of app %s: %w", step, rel.App, err)
	}
	if t.changed {
		r.log.Info("nginx split in force", "app", rel.App, "step", step, "split", s.Weights, "preview", s.Preview, "digest", digest,
			"test", t.test, "reload", t.reload, "verify", t.verify)
	}
	return nil
}

// timings of one install.
type timings struct {
	changed              bool
	test, reload, verify time.Duration
}

// install writes the app's files and puts them in force. It must be
// called with r.mu held.
func (r *Router) install(ctx context.Context, app string, out Rendered, pr probe) (timings, error) {
	var t timings
	digest := out.Digest
	files := []*owned{{path: r.Path(app), content: out.Conf}, {path: r.LocationPath(app), content: out.Location}}
	same := true
	for _, f := range files {
		if err := f.read(); err != nil {
			return t, err
		}
		same = same && f.existed && bytes.Equal(f.old, f.content)
	}
	if same {
		return t, nil
	}
	if err := ctx.Err(); err != nil {
		return t, err
	}
	if err := os.MkdirAll(r.cfg.IncludeDir, 0o755); err != nil {
		return t, err
	}
	restore := func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.restore())
		}
		return errors.Join(errs...)
	}
	for _, f := range files {
		if err := writeAtomic(f.path, f.content); err != nil {
			restore()
			return t, err
		}
	}
	path := files[0].path
	start := time.Now()
	if out, err := r.nginx(ctx, "-t"); err != nil {
		msg := nginxMessage(out, err)
		if strings.Contains(msg, "set_by_lua_block") {
			msg += " (graylane's nginx files need ngx_http_lua_module: " + LoadModules + ")"
		}
		if rerr := restore(); rerr != nil {
			return t, fmt.Errorf("nginx -t: %s: %w (and restoring %s failed: %v)", msg, ErrRejected, path, rerr)
		}
		return t, fmt.Errorf("nginx -t: %s: %w; the previous configuration stays in force", msg, ErrRejected)
	}
	t.test = time.Since(start)
	start = time.Now()
	logOffset := r.logSize()
	if err := r.reload(ctx); err != nil {
		restore()
		return t, fmt.Errorf("reload: %w", err)
	}
	t.reload = time.Since(start)
	start = time.Now()
	if err := r.verify(ctx, app, digest, pr); err != nil {
		if msg := r.logSince(logOffset); msg != "" {
			err = fmt.Errorf("%w; nginx logged: %s", err, msg)
		}
		restore()
		if rerr := r.reload(context.WithoutCancel(ctx)); rerr != nil {
			r.log.Error("nginx: reload after restoring the previous file failed", "app", app, "err", rerr)
		}
		return t, err
	}
	t.verify = time.Since(start)
	t.changed = true
	return t, nil
}

// Forget removes the app's file and reloads nginx.
func (r *Router) Forget(ctx context.Context, app string) error {
	if err := spec.CheckApp(app); err != nil {
		return fmt.Errorf("nginx forget app %q: %w", app, err)
	}
	al := r.appLock(app)
	al.Lock()
	defer al.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.releases, app)
	files := []*owned{{path: r.Path(app)}, {path: r.LocationPath(app)}}
	for _, f := range files {
		if err := f.read(); err != nil {
			return fmt.Errorf("nginx forget app %s: %w", app, err)
		}
	}
	if !files[0].existed && !files[1].existed {
		return nil
	}
	for _, f := range files {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("nginx forget app %s: %w", app, err)
		}
	}
	if out, err := r.nginx(ctx, "-t"); err != nil {
		for _, f := range files {
			f.restore()
		}
		return fmt.Errorf("nginx forget app %s: nginx -t without its files (does a location still include %s?): %s: %w", app, files[1].path, nginxMessage(out, err), ErrRejected)
	}
	if err := r.reload(ctx); err != nil {
		return fmt.Errorf("nginx forget app %s: reload: %w", app, err)
	}
	return nil
}

func (r *Router) args(extra ...string) []string {
	var a []string
	if r.cfg.Prefix != "" {
		p := r.cfg.Prefix
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		a = append(a, "-p", p)
	}
	if r.cfg.ConfFile != "" {
		a = append(a, "-c", r.cfg.ConfFile)
	}
	return append(a, extra...)
}

// nginx runs the nginx binary with the router's -p/-c and extra arguments.
func (r *Router) nginx(ctx context.Context, extra ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.Binary, r.args(extra...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return out, fmt.Errorf("nginx %s: %w", strings.Join(extra, " "), ctx.Err())
	}
	return out, err
}

func (r *Router) reload(ctx context.Context) error {
	if r.cfg.PIDFile == "" {
		if out, err := r.nginx(ctx, "-s", "reload"); err != nil {
			return fmt.Errorf("nginx -s reload: %s", nginxMessage(out, err))
		}
		return nil
	}
	b, err := os.ReadFile(r.cfg.PIDFile)
	if err != nil {
		return fmt.Errorf("read nginx pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("nginx pid file %s holds %q", r.cfg.PIDFile, bytes.TrimSpace(b))
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("SIGHUP nginx master %d: %w", pid, err)
	}
	return nil
}

// owned is one file the router writes, with what it held before.
type owned struct {
	path    string
	content []byte
	old     []byte
	existed bool
}

func (f *owned) read() error {
	b, err := os.ReadFile(f.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f.old, f.existed = b, err == nil
	return nil
}

// restore puts back what the file held (or removes it).
func (f *owned) restore() error {
	if f.existed {
		return writeAtomic(f.path, f.old)
	}
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	// The temporary name does not end in .conf, so an include of *.conf
	// never sees a half-written file.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
