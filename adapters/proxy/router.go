package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// InstanceSource lists an app's instances; the ready ones with an address
// become the proxy's endpoints. Every adapters.Backend is one.
type InstanceSource interface {
	Observe(ctx context.Context, app string) ([]adapters.Instance, error)
}

// InstancesFunc adapts a function to an InstanceSource (graylane resolves
// the app's backend before observing it).
type InstancesFunc func(ctx context.Context, app string) ([]adapters.Instance, error)

// Observe calls f.
func (f InstancesFunc) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	return f(ctx, app)
}

// DefaultResync is how often RouterConfig.Resync re-reads every app's
// instances by default.
const DefaultResync = 2 * time.Second

// RouterConfig configures a Router.
type RouterConfig struct {
	// DataPlane runs the proxies (default: a Local without a routes file,
	// closed with the Router).
	DataPlane DataPlane
	// Instances supplies every app's endpoints: the ready instances with
	// an address, whatever the backend (required).
	Instances InstanceSource
	// Resync is how often every app's endpoints are re-read from
	// Instances, for backends that do not notify changes (default
	// DefaultResync; negative: never, only Sync and Kick).
	Resync time.Duration
	// Logger receives the proxies' logs (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
}

// Router is graylane's built-in proxy as an adapters.TrafficRouter that
// serves any backend: the endpoints of each app's proxy are the ready
// instances its backend reports (Observe), re-read on Kick (wire it to the
// backends' adapters.Notifier), on every SetWeights and every Resync; the
// split is what SetWeights puts in force. It is also an adapters.Drainer
// for backends that stop instances themselves.
type Router struct {
	cfg   RouterConfig
	log   *slog.Logger
	dp    DataPlane
	ownDP bool

	mu       sync.Mutex
	locks    map[string]*sync.Mutex // per app: observe + update, drain
	settings map[string]Settings    // last settings put in force per app
	dirty    map[string]bool
	kick     chan struct{}
	closed   bool

	cancel context.CancelFunc
	done   chan struct{}
}

var (
	_ adapters.TrafficRouter = (*Router)(nil)
	_ adapters.Forgetter     = (*Router)(nil)
	_ adapters.Drainer       = (*Router)(nil)
)

// NewRouter returns a Router and starts its sync loop (Close stops it).
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.Instances == nil {
		return nil, errors.New("proxy router: Instances is required (the backend whose ready instances become endpoints)")
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	r := &Router{
		cfg: cfg, log: cfg.Logger.With("router", "proxy"), dp: cfg.DataPlane,
		locks: map[string]*sync.Mutex{}, settings: map[string]Settings{}, dirty: map[string]bool{},
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if r.dp == nil {
		l, err := NewLocal(LocalConfig{Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		r.dp, r.ownDP = l, true
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.loop(ctx)
	return r, nil
}

// DataPlane returns the data plane the router drives.
func (r *Router) DataPlane() DataPlane { return r.dp }

func (r *Router) appLock(app string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.locks[app]
	if m == nil {
		m = &sync.Mutex{}
		r.locks[app] = m
	}
	return m
}

// Ensure brings rel.App's proxy in line with rel (listen address, sticky
// names), creating it (with the app's current endpoints) if needed. It is
// cheap when nothing changed: graylane calls it on every pass over the
// app, so an edited listen address takes effect without a weight change.
func (r *Router) Ensure(ctx context.Context, rel *spec.Release) error {
	if rel == nil {
		return fmt.Errorf("proxy router: nil release: %w", spec.ErrInvalid)
	}
	want, err := SettingsOf(rel)
	if err != nil {
		return fmt.Errorf("proxy of app %s: %w", rel.App, err)
	}
	r.mu.Lock()
	have, known := r.settings[rel.App]
	r.mu.Unlock()
	if known && have.Equal(want) {
		return nil
	}
	al := r.appLock(rel.App)
	al.Lock()
	defer al.Unlock()
	return r.ensureLocked(ctx, rel.App, want)
}

// ensureLocked puts settings in force for app, reading the data plane's
// routes first when this router has not seen the app yet (after a graylane
// restart the data plane may already serve it).
func (r *Router) ensureLocked(ctx context.Context, app string, want Settings) error {
	r.mu.Lock()
	have, known := r.settings[app]
	r.mu.Unlock()
	if !known {
		if rt, err := r.dp.Routes(ctx, app); err == nil && rt.ListenError == "" {
			have, known = rt.Settings, true
		} else if err == nil {
			known = false // listening failed there: try again
		} else if !errors.Is(err, ErrUnknownApp) {
			return fmt.Errorf("proxy of app %s: %w", app, err)
		}
	}
	if known && have.Equal(want) {
		// First seen since this router started (graylane restarted): the
		// data plane kept its routes; bring its endpoints up to date now
		// rather than at the next resync.
		r.remember(app, want)
		if eps, err := r.endpoints(ctx, app); err == nil {
			if rt, err := r.dp.Routes(ctx, app); err == nil && !sameEndpoints(rt.Endpoints, eps) {
				if _, err := r.dp.Update(ctx, app, Update{Endpoints: &eps}); err != nil {
					return fmt.Errorf("proxy of app %s: %w", app, err)
				}
			}
		}
		return nil
	}
	u := Update{Settings: &want}
	if eps, err := r.endpoints(ctx, app); err == nil {
		u.Endpoints = &eps
	}
	if _, err := r.dp.Update(ctx, app, u); err != nil {
		return fmt.Errorf("proxy of app %s: %w", app, err)
	}
	r.remember(app, want)
	return nil
}

func (r *Router) remember(app string, s Settings) {
	r.mu.Lock()
	r.settings[app] = s
	r.mu.Unlock()
}

// endpoints reads app's ready instance addresses.
func (r *Router) endpoints(ctx context.Context, app string) (Endpoints, error) {
	insts, err := r.cfg.Instances.Observe(ctx, app)
	if err != nil {
		return nil, err
	}
	eps := Endpoints{}
	for _, in := range insts {
		if in.Ready && in.Addr != "" && in.Version != "" {
			eps[in.Version] = append(eps[in.Version], in.Addr)
		}
	}
	for _, l := range eps {
		slices.Sort(l)
	}
	return eps, nil
}

// Weights returns the split in force for app (read from the data plane);
// an empty Split when the app has no proxy. No side effects.
func (r *Router) Weights(ctx context.Context, app string) (traffic.Split, error) {
	if err := ctx.Err(); err != nil {
		return traffic.Split{}, err
	}
	rt, err := r.dp.Routes(ctx, app)
	if errors.Is(err, ErrUnknownApp) {
		return traffic.Split{}, nil
	}
	if err != nil {
		return traffic.Split{}, fmt.Errorf("proxy weights of app %s: %w", app, err)
	}
	return rt.Split, nil
}

// SetWeights validates s, makes sure rel.App's proxy exists with rel's
// settings and the app's current endpoints, and puts s in force: the next
// request routed uses it. An invalid split is rejected before anything is
// created or changed. Idempotent.
func (r *Router) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rel == nil {
		return fmt.Errorf("set weights: nil release: %w", spec.ErrInvalid)
	}
	if err := spec.CheckApp(rel.App); err != nil {
		return fmt.Errorf("set weights: app %w: %w", err, spec.ErrInvalid)
	}
	if err := traffic.ValidateSplit(s); err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	al := r.appLock(rel.App)
	al.Lock()
	defer al.Unlock()
	want, err := SettingsOf(rel)
	if err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	u := Update{Settings: &want, Split: &s}
	if eps, err := r.endpoints(ctx, rel.App); err == nil {
		u.Endpoints = &eps
	} else {
		r.log.Warn("set weights with the last known endpoints: listing instances failed", "app", rel.App, "err", err)
	}
	if _, err := r.dp.Update(ctx, rel.App, u); err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	r.remember(rel.App, want)
	return nil
}

// Sync re-reads app's instances and makes the ready ones its proxy's
// endpoints. It does nothing for an app without a proxy, and keeps the
// last endpoints when the instances cannot be listed.
func (r *Router) Sync(ctx context.Context, app string) error {
	al := r.appLock(app)
	al.Lock()
	defer al.Unlock()
	rt, err := r.dp.Routes(ctx, app)
	if errors.Is(err, ErrUnknownApp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync proxy of app %s: %w", app, err)
	}
	eps, err := r.endpoints(ctx, app)
	if err != nil {
		return fmt.Errorf("sync proxy of app %s: list instances: %w", app, err)
	}
	if sameEndpoints(rt.Endpoints, eps) {
		return nil
	}
	if _, err := r.dp.Update(ctx, app, Update{Endpoints: &eps}); err != nil {
		return fmt.Errorf("sync proxy of app %s: %w", app, err)
	}
	r.log.Debug("proxy endpoints in force", "app", app, "endpoints", eps)
	return nil
}

func sameEndpoints(a, b Endpoints) bool {
	clean := func(e Endpoints) Endpoints {
		out := Endpoints{}
		for v, l := range e {
			if len(l) > 0 {
				s := slices.Clone(l)
				slices.Sort(s)
				out[v] = s
			}
		}
		return out
	}
	return reflect.DeepEqual(clean(a), clean(b))
}

// Kick asks for app's endpoints to be synced soon; it never blocks. Wire
// it to the backends' adapters.Notifier.
func (r *Router) Kick(app string) {
	r.mu.Lock()
	r.dirty[app] = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// loop syncs kicked apps at once and every app each Resync.
func (r *Router) loop(ctx context.Context) {
	defer close(r.done)
	var tick <-chan time.Time
	if r.cfg.Resync > 0 {
		t := time.NewTicker(r.cfg.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		var apps []string
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			r.mu.Lock()
			apps = sortedKeys(r.dirty)
			clear(r.dirty)
			r.mu.Unlock()
		case <-tick:
			var err error
			if apps, err = r.dp.Apps(ctx); err != nil {
				r.log.Warn("list proxies", "err", err)
				continue
			}
		}
		for _, app := range apps {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := r.Sync(sctx, app); err != nil && ctx.Err() == nil {
				r.log.Debug("proxy endpoints not synced", "app", app, "err", err)
			}
			cancel()
		}
	}
}

// Drain takes addr out of app's proxy and waits until no request is in
// flight on it, or ctx ends (see adapters.Drainer). The address comes back
// at the next sync that finds it ready.
func (r *Router) Drain(ctx context.Context, app, addr string) error {
	al := r.appLock(app)
	al.Lock()
	_, err := r.dp.Routes(ctx, app)
	if err == nil {
		_, err = r.dp.Update(ctx, app, Update{Remove: []string{addr}})
	}
	al.Unlock()
	if errors.Is(err, ErrUnknownApp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drain %s of app %s: %w", addr, app, err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := r.dp.InFlight(ctx, app, addr)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s of app %s: %d requests still in flight: %w", addr, app, n, ctx.Err())
		case <-tick.C:
		}
	}
}

// Forget closes app's proxy and forgets its routes.
func (r *Router) Forget(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	al := r.appLock(app)
	al.Lock()
	defer al.Unlock()
	if err := r.dp.Forget(ctx, app); err != nil {
		return fmt.Errorf("forget proxy of app %s: %w", app, err)
	}
	r.mu.Lock()
	delete(r.settings, app)
	r.mu.Unlock()
	return nil
}

// Close stops the sync loop, and the data plane when the router created
// it. A data plane passed in RouterConfig stays up (it may outlive
// graylane).
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	<-r.done
	if l, ok := r.dp.(*Local); ok && r.ownDP {
		return l.Close()
	}
	return nil
}
