package registry

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Source is one registry instances register in (etcdreg.Registry,
// nacosreg.Registry): Watch delivers an app's complete instance list at
// once and on every change, until ctx ends.
type Source interface {
	Watch(ctx context.Context, app string) <-chan []gray.Instance
}

// DefaultFirstList bounds how long Observe waits for a new app's first
// instance list from each source.
const DefaultFirstList = 5 * time.Second

// Config configures a Backend.
type Config struct {
	// Sources are the registries to follow; an app's instances are the
	// union of what they list (keyed by source name).
	Sources map[string]Source
	// FirstList bounds the wait for an app's first list (DefaultFirstList).
	FirstList time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Backend is the registry backend (backend.type registry): graylane
// deploys nothing; instances started elsewhere register themselves and the
// backend observes them per version. Apply records the desired counts
// (Desired) and never fails.
type Backend struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	apps      map[string]*appWatch
	desired   map[string]traffic.Replicas
	listeners adapters.Listeners
}

// appWatch follows one app in every source.
type appWatch struct {
	cancel context.CancelFunc
	first  chan struct{} // closed once every source listed the app once
	mu     sync.Mutex
	lists  map[string][]gray.Instance // by source
}

var (
	_ adapters.Backend        = (*Backend)(nil)
	_ adapters.Notifier       = (*Backend)(nil)
	_ adapters.ChangeNotifier = (*Backend)(nil)
	_ adapters.Forgetter      = (*Backend)(nil)
)

// New returns a Backend; Close stops its watches.
func New(cfg Config) (*Backend, error) {
	if len(cfg.Sources) == 0 {
		return nil, errors.New("registry backend: Config.Sources is empty")
	}
	if cfg.FirstList <= 0 {
		cfg.FirstList = DefaultFirstList
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	ctx, cancel := context.WithCancel(context.Background())
	return &Backend{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		apps: map[string]*appWatch{}, desired: map[string]traffic.Replicas{}}, nil
}

// Notify registers fn, called (from a watch goroutine, must not block)
// when an app's registered instances change.
func (b *Backend) Notify(fn func(app string)) { b.listeners.Add(fn) }

// watchApp returns app's watch, starting it on first use.
func (b *Backend) watchApp(app string) *appWatch {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.apps[app]; w != nil {
		return w
	}
	ctx, cancel := context.WithCancel(b.ctx)
	w := &appWatch{cancel: cancel, first: make(chan struct{}), lists: map[string][]gray.Instance{}}
	if b.ctx.Err() != nil { // closed: follow nothing
		close(w.first)
		return w
	}
	b.apps[app] = w
	var pending sync.WaitGroup
	for name, src := range b.cfg.Sources {
		pending.Add(1)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			listed := false
			for list := range src.Watch(ctx, app) {
				w.mu.Lock()
				w.lists[name] = list
				w.mu.Unlock()
				if !listed {
					listed = true
					pending.Done()
				}
				b.notify(app)
			}
			if !listed {
				pending.Done()
			}
		}()
	}
	go func() {
		pending.Wait()
		close(w.first)
	}()
	return w
}

func (b *Backend) notify(app string) { b.listeners.Fire(app) }

// Observe returns app's registered instances from every source. The
// first call for an app waits (up to Config.FirstList or ctx) for each
// source's first list.
func (b *Backend) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := b.watchApp(app)
	select {
	case <-w.first:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(b.cfg.FirstList):
		b.log.Warn("registry: no instance list yet", "app", app, "after", b.cfg.FirstList)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := []adapters.Instance{}
	for _, name := range slices.Sorted(maps.Keys(w.lists)) {
		for _, in := range w.lists[name] {
			meta := maps.Clone(in.Meta)
			if meta == nil {
				meta = map[string]string{}
			}
			meta["registry"] = name
			ai := adapters.Instance{ID: in.ID, Version: in.Version, Addr: in.Addr, Ready: in.Ready, Meta: meta}
			if !in.Ready {
				ai.Message = "registered, not ready"
			}
			out = append(out, ai)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Apply records the desired instance count per version; it starts and
// stops nothing, and fails only for a cancelled ctx.
func (b *Backend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.watchApp(rel.App)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !maps.Equal(b.desired[rel.App], want) {
		b.log.Info("registry: desired instances", "app", rel.App, "want", want)
	}
	b.desired[rel.App] = maps.Clone(want)
	return nil
}

// Desired returns the counts last applied for app (what whoever deploys
// the app should run), and whether any were.
func (b *Backend) Desired(app string) (traffic.Replicas, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.desired[app]
	return maps.Clone(d), ok
}

// Forget stops following app.
func (b *Backend) Forget(ctx context.Context, app string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.apps[app]; w != nil {
		w.cancel()
		delete(b.apps, app)
	}
	delete(b.desired, app)
	return nil
}

// Close stops every watch.
func (b *Backend) Close() error {
	b.cancel()
	b.wg.Wait()
	return nil
}

// NotifiesEveryChange implements adapters.ChangeNotifier: the registries' watches notify every registration, expiry and change.
func (b *Backend) NotifiesEveryChange() bool { return true }
