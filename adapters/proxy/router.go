package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// RouterConfig configures a Router.
type RouterConfig struct {
	// Logger receives the proxies' logs (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
	// ListenAddr picks the address an app's proxy listens on from its
	// release. Default: ProcessProxyAddr (backend.process.proxy). An empty
	// address means the proxy does not listen; its split and endpoints are
	// still kept.
	ListenAddr func(rel *spec.Release) string
	// Proxy is the template of every app's Config; App, StickyHeader and
	// StickyCookie are filled per app.
	Proxy Config
}

// ProcessProxyAddr returns backend.process.proxy, or "" when the release has
// no process backend.
func ProcessProxyAddr(rel *spec.Release) string {
	if rel.Backend.Process == nil {
		return ""
	}
	return rel.Backend.Process.Proxy
}

// Router is the adapters.TrafficRouter over one Proxy per app. The proxies
// are created on demand (Ensure, SetWeights) from the app's release.
type Router struct {
	cfg RouterConfig

	mu      sync.Mutex
	proxies map[string]*Proxy
	closed  bool
}

var (
	_ adapters.TrafficRouter = (*Router)(nil)
	_ adapters.Forgetter     = (*Router)(nil)
)

// NewRouter returns a Router with no proxies.
func NewRouter(cfg RouterConfig) *Router {
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.ListenAddr == nil {
		cfg.ListenAddr = ProcessProxyAddr
	}
	return &Router{cfg: cfg, proxies: map[string]*Proxy{}}
}

// Ensure returns rel.App's proxy, creating it if needed, and brings its
// listen address and sticky names in line with rel. The proxy is kept even
// when listening fails (the error says why), so its endpoints are tracked and
// a later Ensure listens again.
func (r *Router) Ensure(rel *spec.Release) (*Proxy, error) {
	if rel == nil {
		return nil, fmt.Errorf("proxy router: nil release")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("proxy router: closed")
	}
	var header, cookie string
	if rel.Traffic != nil {
		header, cookie = rel.Traffic.StickyHeader, rel.Traffic.StickyCookie
	}
	p := r.proxies[rel.App]
	if p == nil {
		cfg := r.cfg.Proxy
		cfg.App, cfg.StickyHeader, cfg.StickyCookie = rel.App, header, cookie
		if cfg.Logger == nil {
			cfg.Logger = r.cfg.Logger
		}
		p = New(cfg)
		r.proxies[rel.App] = p
	} else {
		p.SetSticky(header, cookie)
	}
	if err := p.Listen(r.cfg.ListenAddr(rel)); err != nil {
		return p, err
	}
	return p, nil
}

// Proxy returns app's proxy, or nil if it has none.
func (r *Router) Proxy(app string) *Proxy {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proxies[app]
}

// Weights returns the split in force for app; an empty Split when the app
// has no proxy yet. No side effects.
func (r *Router) Weights(ctx context.Context, app string) (traffic.Split, error) {
	if err := ctx.Err(); err != nil {
		return traffic.Split{}, err
	}
	p := r.Proxy(app)
	if p == nil {
		return traffic.Split{}, nil
	}
	return p.Split(), nil
}

// SetWeights validates s, makes sure rel.App's proxy exists and listens, and
// puts s in force: the next request routed uses it. An invalid split is
// rejected before anything is created or changed. Idempotent.
func (r *Router) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rel == nil {
		return fmt.Errorf("set weights: nil release")
	}
	if err := traffic.ValidateSplit(s); err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	p, err := r.Ensure(rel)
	if err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	return p.SetSplit(s)
}

// Forget closes app's proxy and forgets it.
func (r *Router) Forget(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	p := r.proxies[app]
	delete(r.proxies, app)
	r.mu.Unlock()
	if p != nil {
		return p.Close()
	}
	return nil
}

// Close closes every proxy. The Router cannot be used afterwards.
func (r *Router) Close() error {
	r.mu.Lock()
	ps := r.proxies
	r.proxies = map[string]*Proxy{}
	r.closed = true
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Close()
		}()
	}
	wg.Wait()
	return nil
}
