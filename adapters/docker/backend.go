package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// ErrClosed is returned by calls on a closed Backend.
var ErrClosed = errors.New("docker backend is closed")

// Backend runs apps' instances as containers on Docker Engines.
type Backend struct {
	cfg     Config
	log     *slog.Logger
	engines *engines
	compose *composeCache
	prober  *healthprobe.Prober
	started time.Time

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // app loops and their workers

	mu     sync.Mutex
	apps   map[string]*app
	closed bool

	listeners adapters.Listeners
}

var (
	_ adapters.Backend   = (*Backend)(nil)
	_ adapters.Notifier  = (*Backend)(nil)
	_ adapters.Forgetter = (*Backend)(nil)
)

// New returns a Backend. It connects to no engine until an app is applied
// or observed.
func New(cfg Config) (*Backend, error) {
	cfg.defaults()
	if err := spec.CheckDockerHostURL(cfg.DefaultHost.URL); err != nil {
		return nil, fmt.Errorf("docker backend: default host: %w", err)
	}
	if cfg.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("docker backend: %w", err)
		}
		cfg.WorkDir = wd
	}
	b := &Backend{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "docker-backend"),
		prober:  healthprobe.New(nil),
		started: time.Now(),
		apps:    map[string]*app{},
	}
	b.engines = &engines{cfg: &b.cfg, all: map[string]*engine{}}
	b.compose = &composeCache{workDir: cfg.WorkDir, entries: map[string]composeEntry{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Notify registers fn, called with the app's name whenever its observed
// instances change (a container appears, becomes ready or unready, fails,
// is stopped or removed). fn must not block.
func (b *Backend) Notify(fn func(app string)) { b.listeners.Add(fn) }

func (b *Backend) notify(app string) { b.listeners.Fire(app) }

// getApp returns the app's tracker, starting it when create is set. When
// prime is not nil it runs on the tracker before getApp returns and, for a
// new tracker, before its loop starts: the first pass (the one a first
// Observe waits for) then already scans the engines prime recorded, never
// the default engine an app nobody applied falls back to.
func (b *Backend) getApp(name string, create bool, prime func(*app)) (*app, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	a := b.apps[name]
	if a == nil && create {
		a = newApp(b, name)
		b.apps[name] = a
		if prime != nil {
			prime(a)
		}
		b.wg.Add(1)
		go a.run()
		return a, nil
	}
	if a != nil && prime != nil {
		prime(a)
	}
	return a, nil
}

// Apply records the desired replicas of rel.App and starts converging:
// missing slots 0..n-1 of each version get a container (created from the
// release in force: image, command, env, ports...), surplus containers are
// drained, stopped and removed, in the order backend.docker.order says.
// Running containers are otherwise left alone, even when the release's
// other fields changed (they apply to containers created later). Apply
// returns once the desired state is recorded; it does not wait for the
// engines. The step is not used. A release this backend cannot run (no docker section, a compose
// file that does not load, a template that does not render) is rejected
// with an error wrapping spec.ErrInvalid and changes nothing.
func (b *Backend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rel == nil {
		return fmt.Errorf("docker backend: nil release: %w", spec.ErrInvalid)
	}
	if err := spec.CheckApp(rel.App); err != nil {
		return fmt.Errorf("docker backend: app %v: %w", err, spec.ErrInvalid)
	}
	if rel.Backend.Docker == nil {
		return fmt.Errorf("apply app %s: backend.type is %q, not docker: %w", rel.App, rel.Backend.Type, adapters.ErrUnsupported)
	}
	wantCopy, err := adapters.CheckReplicas(rel.App, want)
	if err != nil {
		return err
	}
	eff, err := resolve(rel, b.cfg.DefaultHost, b.compose)
	if err != nil {
		return fmt.Errorf("apply app %s: %w", rel.App, err)
	}
	for v := range wantCopy {
		if _, err := eff.image(rel.App, v); err != nil {
			return fmt.Errorf("apply app %s: %w", rel.App, err)
		}
	}
	for _, h := range eff.hosts {
		if _, err := b.engines.get(h); err != nil {
			return fmt.Errorf("apply app %s: %w", rel.App, err)
		}
	}
	rel = rel.Clone()
	if _, err := b.getApp(rel.App, true, func(a *app) { a.setDesired(rel, eff, wantCopy) }); err != nil {
		return fmt.Errorf("apply app %s: %w", rel.App, err)
	}
	return nil
}

// Observe returns the app's instances, sorted by ID: every container of
// the app on its engines (adopted ones included, found by their labels),
// and a not-ready entry for each wanted slot that has no container yet
// (pulling, creating, or failing: Message says why). Meta holds the
// container, host, image, slot, state and restarts; a slot that keeps
// failing carries adapters.MetaStalled with the engine's message. When an
// engine cannot be reached, Observe returns an error naming it (and the
// release holds). The first Observe of an app graylane has not applied
// since it started waits for one look at its engines (bounded by ctx).
// Observing starts no container and stops none.
func (b *Backend) Observe(ctx context.Context, appName string) ([]adapters.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.CheckApp(appName); err != nil {
		return nil, fmt.Errorf("observe app %q: %v: %w", appName, err, spec.ErrInvalid)
	}
	a, err := b.getApp(appName, true, nil)
	if err != nil {
		return nil, fmt.Errorf("observe app %s: %w", appName, err)
	}
	select {
	case <-a.firstPass:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.ctx.Done():
		return nil, ErrClosed
	}
	view, verr := a.observed()
	if verr != nil {
		return nil, fmt.Errorf("observe app %s: %w", appName, verr)
	}
	return view, nil
}

// Forget stops and removes every container of the app (draining them),
// waits for them to be gone or for ctx to end, and forgets the app.
func (b *Backend) Forget(ctx context.Context, appName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := b.getApp(appName, false, nil)
	if err != nil {
		return fmt.Errorf("forget app %s: %w", appName, err)
	}
	if a == nil {
		return nil
	}
	if err := a.stopAll(ctx); err != nil {
		return fmt.Errorf("forget app %s: %w", appName, err)
	}
	b.mu.Lock()
	if b.apps[appName] == a {
		delete(b.apps, appName)
	}
	b.mu.Unlock()
	a.close()
	return nil
}

// Close is graylane's shutdown: it stops watching and converging, and
// leaves every container running (the engines' restart policy keeps them
// up), so a new Backend adopts them by their labels. It waits for work in
// flight to return.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	b.engines.close()
	return nil
}
