package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/internal/sshdial"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Config configures a Backend.
type Config struct {
	// KeyFile is the private key (OpenSSH or PEM, unencrypted) graylane
	// logs in with. Signers may be given instead (e.g. from an agent).
	KeyFile string
	Signers []gossh.Signer
	// KnownHostsFiles verify host keys. Required: an unknown host or a
	// changed key fails the step; nothing is trusted on first use.
	KnownHostsFiles []string
	// DialTimeout bounds connecting and the SSH handshake (default 10s).
	DialTimeout time.Duration
	// UploadTimeout bounds one host's upload (default 30m); other remote
	// commands use the spec's commandTimeout.
	UploadTimeout time.Duration
	// WorkDir holds unpacked tarball artifacts (default
	// $TMPDIR/graylane-ssh).
	WorkDir string
	// Parallel bounds the hosts uploaded to or inspected at once (default 8).
	Parallel int
	// Releases, if set, gives Observe the spec of an app this process has
	// not applied yet (after a restart), so it can adopt running hosts.
	Releases func(ctx context.Context, app string) (*spec.Release, error)
	// HTTPClient probes health (default: no keep-alive, so a restarted
	// process is reached on a fresh connection).
	HTTPClient *http.Client
	// Logger gets one line per host step (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
}

// Backend deploys apps to hosts over SSH. See the package doc.
type Backend struct {
	cfg    Config
	log    *slog.Logger
	pool   *pool
	arts   *artifacts
	prober *healthprobe.Prober

	mu        sync.Mutex
	locks     map[string]*sync.Mutex
	releases  map[string]*spec.Release
	last      map[string]string // app|host -> last observed version
	listeners adapters.Listeners
}

var (
	_ adapters.Backend   = (*Backend)(nil)
	_ adapters.Notifier  = (*Backend)(nil)
	_ adapters.Forgetter = (*Backend)(nil)
)

// New returns a Backend. It does not connect to any host.
func New(cfg Config) (*Backend, error) {
	if len(cfg.KnownHostsFiles) == 0 {
		return nil, errors.New("ssh backend: KnownHostsFiles is required (host keys are always verified)")
	}
	signers := cfg.Signers
	if cfg.KeyFile != "" {
		s, err := sshdial.LoadKey(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ssh backend: %w", err)
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		return nil, errors.New("ssh backend: KeyFile or Signers is required")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = sshdial.DefaultDialTimeout
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = 30 * time.Minute
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "graylane-ssh")
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	return &Backend{
		cfg:      cfg,
		log:      cfg.Logger.With("backend", "ssh"),
		pool:     &pool{sshdial.NewPool(sshdial.Config{Signers: signers, KnownHostsFiles: cfg.KnownHostsFiles, DialTimeout: cfg.DialTimeout})},
		arts:     &artifacts{workDir: cfg.WorkDir},
		prober:   healthprobe.New(cfg.HTTPClient),
		locks:    map[string]*sync.Mutex{},
		releases: map[string]*spec.Release{},
		last:     map[string]string{},
	}, nil
}

// Close closes every SSH connection.
func (b *Backend) Close() error {
	b.pool.Close()
	return nil
}

// Notify registers fn, called with the app's name after each host finished
// a move (switched and healthy, stopped, or failed).
func (b *Backend) Notify(fn func(app string)) { b.listeners.Add(fn) }

func (b *Backend) changed(app string) { b.listeners.Fire(app) }

// Forget drops what the backend remembers of the app. Hosts keep their
// releases; Apply with no replicas stops them first.
func (b *Backend) Forget(ctx context.Context, app string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.releases, app)
	for k := range b.last {
		if strings.HasPrefix(k, app+"|") {
			delete(b.last, k)
		}
	}
	return ctx.Err()
}

// host is one resolved host of a release.
type host struct {
	name, sshAddr, appAddr, root string
	canary                       bool
	spec                         spec.SSHHost
}

func hostsOf(cfg *spec.SSHBackend) []host {
	var out []host
	for _, h := range cfg.Hosts {
		out = append(out, host{name: h.HostName(), sshAddr: cfg.SSHAddr(h), appAddr: cfg.HostAppAddr(h), root: cfg.HostRoot(h), canary: cfg.IsCanary(h), spec: h})
	}
	return out
}

func sshSection(rel *spec.Release) (*spec.SSHBackend, error) {
	if rel == nil {
		return nil, errors.New("nil release")
	}
	if rel.Backend.SSH == nil {
		return nil, fmt.Errorf("release of app %s has no backend.ssh section (backend.type is %q)", rel.App, rel.Backend.Type)
	}
	return rel.Backend.SSH, nil
}

func (b *Backend) release(ctx context.Context, app string) (*spec.Release, error) {
	b.mu.Lock()
	rel := b.releases[app]
	b.mu.Unlock()
	if rel != nil || b.cfg.Releases == nil {
		return rel, nil
	}
	rel, err := b.cfg.Releases(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("look up release of app %s: %w", app, err)
	}
	if rel != nil && rel.Backend.SSH == nil {
		return nil, nil
	}
	return rel, nil
}

// forEach runs fn for 0..n-1 with at most limit at once and returns the
// errors by index.
func forEach(n, limit int, fn func(i int) error) []error {
	errs := make([]error, n)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errs
}

// Observe reports one instance per host whose current link points at a
// release: its version, its app address and whether its health check
// answers 2xx now. A host that cannot be reached is reported not ready
// under the version last seen there (or left out if never seen). Observe
// only reads (readlink, ls, one HTTP GET per host).
func (b *Backend) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rel, err := b.release(ctx, app)
	if err != nil || rel == nil {
		return nil, err
	}
	cfg, err := sshSection(rel)
	if err != nil {
		return nil, err
	}
	hosts := hostsOf(cfg)
	insts := make([]*adapters.Instance, len(hosts))
	forEach(len(hosts), b.cfg.Parallel, func(i int) error {
		h := hosts[i]
		inst := &adapters.Instance{ID: app + "@" + h.name, Addr: h.appAddr, Meta: map[string]string{"host": h.name, "ssh": h.sshAddr, "root": h.root}}
		if h.canary {
			inst.Meta["canary"] = "true"
		}
		key := app + "|" + h.name
		info, err := b.inspect(ctx, cfg.User, h, cfg.EffectiveCommandTimeout())
		if err != nil {
			b.mu.Lock()
			inst.Version = b.last[key]
			b.mu.Unlock()
			if inst.Version != "" {
				inst.Message = "ssh: " + err.Error()
				insts[i] = inst
			}
			return nil
		}
		b.mu.Lock()
		b.last[key] = info.current
		b.mu.Unlock()
		if info.current == "" {
			return nil
		}
		inst.Version = info.current
		inst.Meta["release"] = info.link
		if err := b.probe(ctx, h, rel); err != nil {
			inst.Message = err.Error()
		} else {
			inst.Ready = true
		}
		insts[i] = inst
		return nil
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []adapters.Instance
	for _, in := range insts {
		if in != nil {
			out = append(out, *in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Apply makes the number of hosts whose current link points at each
// version equal want, switching hosts in batches. It blocks until every
// host it moves is switched and healthy, or until the first batch with a
// failure has finished (later batches do not start). See Deploy.
func (b *Backend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	_, err := b.Deploy(ctx, rel, want)
	return err
}
