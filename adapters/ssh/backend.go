package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// ErrHealthCheck: a switched host did not pass its health check in time.
var ErrHealthCheck = errors.New("health check failed")

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
	cfg  Config
	log  *slog.Logger
	pool *pool
	arts *artifacts
	http *http.Client

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
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ssh backend: read key: %w", err)
		}
		s, err := gossh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("ssh backend: parse key %s: %w", cfg.KeyFile, err)
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		return nil, errors.New("ssh backend: KeyFile or Signers is required")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
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
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	return &Backend{
		cfg:      cfg,
		log:      cfg.Logger.With("backend", "ssh"),
		pool:     &pool{signers: signers, knownHosts: cfg.KnownHostsFiles, dialTimeout: cfg.DialTimeout},
		arts:     &artifacts{workDir: cfg.WorkDir},
		http:     cfg.HTTPClient,
		locks:    map[string]*sync.Mutex{},
		releases: map[string]*spec.Release{},
		last:     map[string]string{},
	}, nil
}

// Close closes every SSH connection.
func (b *Backend) Close() error {
	b.pool.close()
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

// hostInfo is what inspect reads from a host.
type hostInfo struct {
	// current is the version current points to ("" if none or not a
	// graylane release); link is the raw link target.
	current, link string
	// releases are the release directories, most recently used first.
	releases []string
}

func (b *Backend) inspect(ctx context.Context, user string, h host, timeout time.Duration) (hostInfo, error) {
	script := fmt.Sprintf(`R=%s
c=$(readlink -- "$R/current" 2>/dev/null) || c=
printf 'current=%%s\n' "$c"
if cd -- "$R/releases" 2>/dev/null; then ls -1t | sed 's/^/release=/'; fi
`, quote(h.root))
	out, err := b.pool.script(ctx, user, h.sshAddr, timeout, script)
	if err != nil {
		return hostInfo{}, err
	}
	var info hostInfo
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "current="); ok {
			info.link = v
			if name, ok := strings.CutPrefix(v, "releases/"); ok && spec.CheckVersion(name) == nil {
				info.current = name
			}
		} else if v, ok := strings.CutPrefix(line, "release="); ok && spec.CheckVersion(v) == nil {
			info.releases = append(info.releases, v)
		}
	}
	return info, nil
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

// probe sends one health check.
func (b *Backend) probe(ctx context.Context, h host, rel *spec.Release) error {
	if h.appAddr == "" {
		return errors.New("no app address to check")
	}
	p := rel.Health.Path
	if p == "" {
		p = spec.DefaultHealthPath
	}
	timeout := spec.DefaultHealthTimeout
	if rel.Health.Timeout != nil {
		timeout = rel.Health.Timeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + h.appAddr + p
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// waitHealthy polls the health check until it passes, probing every 20ms
// at first and backing off to health.interval, for at most healthTimeout.
func (b *Backend) waitHealthy(ctx context.Context, h host, rel *spec.Release) error {
	limit := rel.Backend.SSH.EffectiveHealthTimeout()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	interval := spec.DefaultHealthInterval
	if rel.Health.Interval != nil {
		interval = rel.Health.Interval.Duration
	}
	wait := 20 * time.Millisecond
	for {
		err := b.probe(ctx, h, rel)
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			return fmt.Errorf("%w within %v: %v", ErrHealthCheck, limit, err)
		case <-t.C:
		}
		wait = min(wait*2, interval)
	}
}

// HostResult is what happened to one host during a Deploy.
type HostResult struct {
	Host     string
	From, To string
	Canary   bool
	// Batch is the host's batch, from 0.
	Batch int
	// Uploaded and Reused count the release's files sent over SSH and
	// copied on the host from the release in force (equal checksums);
	// both are 0 when the release directory already existed.
	Uploaded, Reused int
	UploadedBytes    int64
	// Stage is the upload (0 if the release directory existed). Switch is
	// switching current and running the restart command, one remote
	// script; Health is the wait for the health check. Switch+Health is
	// what serving a version whose directory exists costs: a rollback.
	Stage, Switch, Health time.Duration
	Err                   error
}

// Report is the outcome of a Deploy.
type Report struct {
	App   string
	Hosts []HostResult
}

// HostError names the host and step a failure happened at.
type HostError struct {
	Host, Step string
	Err        error
}

func (e *HostError) Error() string { return fmt.Sprintf("host %s: %s: %v", e.Host, e.Step, e.Err) }
func (e *HostError) Unwrap() error { return e.Err }

// Apply makes the number of hosts whose current link points at each
// version equal want, switching hosts in batches. It blocks until every
// host it moves is switched and healthy, or until the first batch with a
// failure has finished (later batches do not start). See Deploy.
func (b *Backend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	_, err := b.Deploy(ctx, rel, want)
	return err
}

// Deploy is Apply returning what happened per host.
//
// Steps: inspect every host (read only) and plan the moves (PlanMoves);
// nothing to do returns at once. Otherwise take the app's deploy lock (in
// this process, and a flock on every host's {root}/.graylane.lock, so two
// releases never touch the same hosts at once; ErrLocked if held),
// inspect again and re-plan under the lock, upload every missing release
// before switching any host, then switch batch by batch: batch size is
// strategy.maxUnavailable of the hosts (default 25%, at least 1), canary
// hosts first. Per host: hooks.before, switch current (new symlink renamed
// over it), restart, health check, hooks.after, prune old releases.
func (b *Backend) Deploy(ctx context.Context, rel *spec.Release, want traffic.Replicas) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := sshSection(rel)
	if err != nil {
		return nil, fmt.Errorf("ssh apply: %w", err)
	}
	app := rel.App
	report := &Report{App: app}
	for v, n := range want {
		if err := spec.CheckVersion(v); err != nil {
			return report, fmt.Errorf("ssh apply of app %s: version %q: %w", app, v, err)
		}
		if n < 0 {
			return report, fmt.Errorf("ssh apply of app %s: %d replicas of %s", app, n, v)
		}
	}
	b.mu.Lock()
	b.releases[app] = rel
	b.mu.Unlock()
	hosts := hostsOf(cfg)

	moves, _, err := b.plan(ctx, rel, hosts, want)
	if err != nil || len(moves) == 0 {
		return report, err
	}

	b.mu.Lock()
	mu := b.locks[app]
	if mu == nil {
		mu = &sync.Mutex{}
		b.locks[app] = mu
	}
	b.mu.Unlock()
	if !mu.TryLock() {
		return report, fmt.Errorf("ssh apply of app %s: %w in this process", app, ErrLocked)
	}
	defer mu.Unlock()
	locks := make([]*remoteLock, len(hosts))
	defer func() {
		for _, l := range locks {
			if l != nil {
				l.release()
			}
		}
	}()
	lockErrs := forEach(len(hosts), b.cfg.Parallel, func(i int) error {
		l, err := b.pool.lock(ctx, cfg.User, hosts[i].sshAddr, hosts[i].root, cfg.EffectiveCommandTimeout())
		if err != nil {
			return &HostError{Host: hosts[i].name, Step: "take deploy lock", Err: err}
		}
		locks[i] = l
		return nil
	})
	if err := errors.Join(lockErrs...); err != nil {
		return report, fmt.Errorf("ssh apply of app %s: %w", app, err)
	}
	moves, infos, err := b.plan(ctx, rel, hosts, want)
	if err != nil || len(moves) == 0 {
		return report, err
	}
	byName := map[string]int{}
	for i, h := range hosts {
		byName[h.name] = i
	}
	results := make([]HostResult, len(moves))
	for i, m := range moves {
		results[i] = HostResult{Host: m.Host, From: m.From, To: m.To, Canary: m.Canary}
	}
	b.log.Info("deploy planned", "app", app, "version", rel.Version, "want", want, "moves", len(moves))

	// Upload every missing release before switching anything. Each
	// version's artifact is read (and checksummed) once per Deploy.
	var artMu sync.Mutex
	arts := map[string][]Entry{}
	artifactOf := func(version string) ([]Entry, error) {
		artMu.Lock()
		defer artMu.Unlock()
		if e, ok := arts[version]; ok {
			return e, nil
		}
		p, err := spec.Render(cfg.Artifact, spec.TemplateData{App: app, Version: spec.CodeVersion(version)})
		if err != nil {
			return nil, err
		}
		e, err := b.arts.entries(p)
		if err != nil {
			return nil, err
		}
		arts[version] = e
		return e, nil
	}
	stageErrs := forEach(len(moves), b.cfg.Parallel, func(i int) error {
		m := moves[i]
		h := hosts[byName[m.Host]]
		info := infos[byName[m.Host]]
		if m.To == "" || contains(info.releases, m.To) {
			return nil
		}
		start := time.Now()
		entries, err := artifactOf(m.To)
		if err != nil {
			return &HostError{Host: h.name, Step: "read artifact of " + m.To, Err: err}
		}
		var overlay []Entry
		if h.spec.ConfigDir != "" {
			var err error
			if overlay, err = scanDir(h.spec.ConfigDir); err != nil {
				return &HostError{Host: h.name, Step: "read config dir", Err: err}
			}
		}
		man := buildManifest(m.To, entries, overlay)
		up, reused, n, err := b.stage(ctx, cfg, h, info, man)
		results[i].Uploaded, results[i].Reused, results[i].UploadedBytes = up, reused, n
		results[i].Stage = time.Since(start)
		if err != nil {
			return &HostError{Host: h.name, Step: "upload " + m.To, Err: err}
		}
		b.log.Info("release uploaded", "app", app, "host", h.name, "version", m.To, "uploaded", up, "reused", reused, "bytes", n, "took", results[i].Stage)
		return nil
	})
	if err := errors.Join(stageErrs...); err != nil {
		report.Hosts = results
		return report, fmt.Errorf("ssh apply of app %s: no host switched: %w", app, err)
	}

	size := max(1, rel.Strategy.MaxUnavailable.Scaled(len(hosts), false, len(hosts)/4))
	batches := Batches(moves, rel.Version, size)
	idx := map[string]int{}
	for i, m := range moves {
		idx[m.Host] = i
	}
	for bi, batch := range batches {
		errs := forEach(len(batch), len(batch), func(k int) error {
			m := batch[k]
			i := idx[m.Host]
			results[i].Batch = bi
			h := hosts[byName[m.Host]]
			err := b.moveHost(ctx, rel, h, infos[byName[m.Host]], m, &results[i])
			results[i].Err = err
			b.changed(app)
			return err
		})
		if err := errors.Join(errs...); err != nil {
			report.Hosts = results
			rest := len(batches) - bi - 1
			return report, fmt.Errorf("ssh apply of app %s: batch %d of %d failed, %d batch(es) not started: %w", app, bi+1, len(batches), rest, err)
		}
	}
	report.Hosts = results
	return report, nil
}

// plan inspects the hosts and plans the moves.
func (b *Backend) plan(ctx context.Context, rel *spec.Release, hosts []host, want traffic.Replicas) ([]Move, []hostInfo, error) {
	cfg := rel.Backend.SSH
	infos := make([]hostInfo, len(hosts))
	errs := forEach(len(hosts), b.cfg.Parallel, func(i int) error {
		info, err := b.inspect(ctx, cfg.User, hosts[i], cfg.EffectiveCommandTimeout())
		if err != nil {
			return &HostError{Host: hosts[i].name, Step: "inspect", Err: err}
		}
		infos[i] = info
		return nil
	})
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("ssh apply of app %s: %w", rel.App, err)
	}
	states := make([]HostState, len(hosts))
	for i, h := range hosts {
		states[i] = HostState{Name: h.name, Version: infos[i].current, Canary: h.canary}
		b.mu.Lock()
		b.last[rel.App+"|"+h.name] = infos[i].current
		b.mu.Unlock()
	}
	return PlanMoves(states, want, rel.Version), infos, nil
}

// moveHost performs one move on one host.
func (b *Backend) moveHost(ctx context.Context, rel *spec.Release, h host, info hostInfo, m Move, res *HostResult) error {
	cfg := rel.Backend.SSH
	timeout := cfg.EffectiveCommandTimeout()
	log := b.log.With("app", rel.App, "host", h.name, "from", m.From, "to", m.To)
	if m.To == "" {
		if len(cfg.Stop) > 0 {
			if err := b.runArgv(ctx, cfg, h, rel.App, m.From, h.root+"/current", cfg.Stop, timeout); err != nil {
				return &HostError{Host: h.name, Step: "stop", Err: err}
			}
		}
		if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, "rm -f -- "+quote(h.root+"/current")+"\n"); err != nil {
			return &HostError{Host: h.name, Step: "remove current", Err: err}
		}
		log.Info("host stopped")
		return nil
	}
	relDir := h.root + "/releases/" + m.To
	if cfg.Hooks != nil && len(cfg.Hooks.Before) > 0 {
		if err := b.runArgv(ctx, cfg, h, rel.App, m.To, relDir, cfg.Hooks.Before, timeout); err != nil {
			return &HostError{Host: h.name, Step: "hooks.before", Err: err}
		}
	}
	// One remote script switches current and execs the restart command:
	// one round trip (and one remote shell start) per host.
	start := time.Now()
	restart, err := b.argvScript(h, rel.App, m.To, relDir, cfg.Restart)
	if err != nil {
		return &HostError{Host: h.name, Step: "restart", Err: err}
	}
	sw := fmt.Sprintf(`set -eu
R=%s
test -d "$R/releases/"%s || { echo "release directory $R/releases/"%s" is missing" >&2; exit 1; }
L="$R/.current.tmp-"%s
rm -f -- "$L"
ln -s -- %s "$L"
mv -T -- "$L" "$R/current"
touch -- "$R/releases/"%s
echo %s
%s`, quote(h.root), quote(m.To), quote(m.To), quote(randid.Hex(6)), quote("releases/"+m.To), quote(m.To), switchedMarker, restart)
	out, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, sw)
	res.Switch = time.Since(start)
	if err != nil {
		if !bytes.HasPrefix(out, []byte(switchedMarker+"\n")) {
			return &HostError{Host: h.name, Step: "switch current to " + m.To, Err: err}
		}
		return &HostError{Host: h.name, Step: "restart (current switched to " + m.To + ")", Err: err}
	}
	start = time.Now()
	if err := b.waitHealthy(ctx, h, rel); err != nil {
		res.Health = time.Since(start)
		log.Error("host unhealthy after switch", "err", err)
		return &HostError{Host: h.name, Step: "health check of " + m.To, Err: err}
	}
	res.Health = time.Since(start)
	log.Info("host switched", "switch_and_restart", res.Switch, "health", res.Health)
	if cfg.Hooks != nil && len(cfg.Hooks.After) > 0 {
		if err := b.runArgv(ctx, cfg, h, rel.App, m.To, relDir, cfg.Hooks.After, timeout); err != nil {
			return &HostError{Host: h.name, Step: "hooks.after", Err: err}
		}
	}
	order := append([]string{m.To}, info.releases...)
	var uniq []string
	for _, r := range order {
		if !contains(uniq, r) {
			uniq = append(uniq, r)
		}
	}
	if del := Prune(uniq, cfg.EffectiveKeepReleases(), m.To, m.From); len(del) > 0 {
		args := make([]string, len(del))
		for i, d := range del {
			args[i] = quote(h.root + "/releases/" + d)
		}
		if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, "rm -rf -- "+strings.Join(args, " ")+"\n"); err != nil {
			log.Warn("pruning old releases failed", "err", err)
		} else {
			log.Info("old releases pruned", "removed", del)
		}
	}
	return nil
}

// switchedMarker is printed by the switch script once current points at
// the new release, so a failure is attributed to the switch or the restart.
const switchedMarker = "graylane-switched"

// argvScript renders a templated argv into a script line that cd's to dir,
// exports the GRAYLANE_* environment and execs the command. Every word is
// quoted: the remote shell only cd's, exports and execs.
func (b *Backend) argvScript(h host, app, version, dir string, argv []string) (string, error) {
	data := spec.SSHTemplateData{App: app, Version: version, Host: h.name, AppAddr: h.appAddr, Root: h.root, ReleaseDir: h.root + "/releases/" + version}
	words := make([]string, len(argv))
	for i, a := range argv {
		s, err := spec.RenderSSH(a, data)
		if err != nil {
			return "", fmt.Errorf("argument %d: %w", i, err)
		}
		words[i] = quote(s)
	}
	return fmt.Sprintf("cd -- %s\nexport GRAYLANE_APP=%s GRAYLANE_VERSION=%s GRAYLANE_HOST=%s GRAYLANE_ROOT=%s GRAYLANE_RELEASE_DIR=%s GRAYLANE_APP_ADDR=%s\nexec %s </dev/null\n",
		quote(dir), quote(app), quote(version), quote(h.name), quote(h.root), quote(data.ReleaseDir), quote(h.appAddr), strings.Join(words, " ")), nil
}

// runArgv runs a templated argv on the host in dir.
func (b *Backend) runArgv(ctx context.Context, cfg *spec.SSHBackend, h host, app, version, dir string, argv []string, timeout time.Duration) error {
	script, err := b.argvScript(h, app, version, dir, argv)
	if err != nil {
		return err
	}
	_, err = b.pool.script(ctx, cfg.User, h.sshAddr, timeout, "set -e\n"+script)
	return err
}

// stage creates {root}/releases/{version} on a host: files whose checksum
// matches a file of the release in force are copied there on the host, the
// others are uploaded as one tar stream; the manifest goes last; linked
// files are symlinked to {root}/shared; the finished directory is renamed
// into place, so a release directory is always complete.
func (b *Backend) stage(ctx context.Context, cfg *spec.SSHBackend, h host, info hostInfo, man *Manifest) (uploaded, reused int, bytes int64, err error) {
	timeout := cfg.EffectiveCommandTimeout()
	var cur *Manifest
	curDir := ""
	if info.current != "" {
		curDir = h.root + "/releases/" + info.current
		out, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, "cat -- "+quote(curDir+"/"+ManifestName)+"\n")
		if err == nil {
			var m Manifest
			if json.Unmarshal(out, &m) == nil {
				cur = &m
			}
		}
	}
	byPath := map[string]Entry{}
	byHash := map[string]string{}
	if cur != nil {
		for _, e := range cur.Entries {
			if e.Type == "f" && checkRelPath(e.Path) == nil {
				byPath[e.Path] = e
				byHash[e.SHA256+fmt.Sprintf("/%o", e.Mode)] = e.Path
			}
		}
	}
	tmp := h.root + "/releases/.tmp-" + man.Version + "-" + randid.Hex(6)
	var script strings.Builder
	fmt.Fprintf(&script, "set -eu\nR=%s\nrm -rf -- \"$R\"/releases/.tmp-*\nmkdir -p -- %s \"$R/shared\"\ncd -- %s\n", quote(h.root), quote(tmp), quote(tmp))
	upload := map[string]bool{}
	made := map[string]bool{}
	for _, e := range man.Entries {
		if e.Type != "f" {
			continue
		}
		src := ""
		if c, ok := byPath[e.Path]; ok && c.SHA256 == e.SHA256 && c.Mode == e.Mode {
			src = e.Path
		} else if p, ok := byHash[e.SHA256+fmt.Sprintf("/%o", e.Mode)]; ok {
			src = p
		}
		if src == "" {
			upload[e.Path] = true
			uploaded++
			bytes += e.Size
			continue
		}
		if d := path.Dir(e.Path); d != "." && !made[d] {
			fmt.Fprintf(&script, "mkdir -p -- %s\n", quote(d))
			made[d] = true
		}
		fmt.Fprintf(&script, "cp -p -- %s %s\n", quote(curDir+"/"+src), quote(e.Path))
		reused++
	}
	if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, script.String()); err != nil {
		return uploaded, reused, bytes, fmt.Errorf("prepare %s: %w", tmp, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, man, upload)) }()
	_, err = b.pool.run(ctx, cfg.User, h.sshAddr, b.cfg.UploadTimeout, "tar -x --no-same-owner -f - -C "+quote(tmp), pr)
	pr.Close()
	if err != nil {
		return uploaded, reused, bytes, fmt.Errorf("upload into %s: %w", tmp, err)
	}
	var fin strings.Builder
	fmt.Fprintf(&fin, "set -eu\n")
	for _, f := range cfg.LinkedFiles {
		target := tmp + "/" + f
		fmt.Fprintf(&fin, "rm -rf -- %s\nmkdir -p -- %s\nln -s -- %s %s\n", quote(target), quote(path.Dir(target)), quote(h.root+"/shared/"+f), quote(target))
	}
	fmt.Fprintf(&fin, "mv -T -- %s %s\n", quote(tmp), quote(h.root+"/releases/"+man.Version))
	if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, fin.String()); err != nil {
		return uploaded, reused, bytes, fmt.Errorf("finish %s: %w", tmp, err)
	}
	return uploaded, reused, bytes, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
