package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
)

// Rules delivers published gray documents: any configsync.Source over the
// place graylane publishes them (etcdreg.Rules, nacosreg.Rules) fits.
type Rules interface {
	Watch(ctx context.Context, afterRevision int64) <-chan configsync.WatchResponse
}

// Discovery follows the instances of apps.
type Discovery interface {
	// Watch delivers app's complete instance list at once and again
	// whenever it changes (a slow reader gets the latest list), until ctx
	// ends; then the channel is closed.
	Watch(ctx context.Context, app string) <-chan []gray.Instance
}

// Registrar registers instances.
type Registrar interface {
	// Register makes in visible to discovery and keeps it registered
	// (heartbeats, lease renewal, re-registration after an outage) until
	// ctx ends or the registration is deregistered.
	Register(ctx context.Context, in gray.Instance) (Registration, error)
}

// Registration is one registered instance.
type Registration interface {
	// Deregister removes the instance at once. It is idempotent.
	Deregister(ctx context.Context) error
}

// Config configures a Client. App, Version and Rules are required; Addr
// and Registrar to register; Discovery and Services to call other apps.
type Config struct {
	// App and Version are this service and the version it runs.
	App, Version string
	// ID identifies this instance within the app (default: Addr).
	ID string
	// Addr is where this instance serves (host:port), as others reach it.
	Addr string
	// Region, Zone, Env and Group are registered under Nepxion's metadata
	// keys and matched by rules' regions, zones and instanceLabels.
	Region, Zone, Env, Group string
	// Labels are further metadata, also matched by instanceLabels.
	Labels map[string]string

	// Rules follows the published gray documents.
	Rules Rules
	// Discovery follows the instances of Services.
	Discovery Discovery
	// Registrar registers this instance (Register); nil for a client that
	// serves nothing (a job, a test driver).
	Registrar Registrar
	// Services are the apps this service calls through Transport, as
	// http://{app}/path. Calls to other hosts pass through untouched.
	Services []string

	// Edge ignores incoming steering headers (see RouterConfig.Edge),
	// except from callers Trusted accepts.
	Edge bool
	// Trusted, at the edge, accepts the callers whose steering headers
	// count (see RouterConfig.Trusted); nil trusts nobody.
	Trusted func(*http.Request) bool
	// ClientIPHeader names a trusted header carrying the client IP (see
	// RouterConfig.ClientIPHeader).
	ClientIPHeader string
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Client is a service's handle on graylane: it follows the gray documents
// and the instances of the apps it calls, decides requests (Middleware),
// routes outbound calls (Transport) and registers the instance (Register).
type Client struct {
	cfg    Config
	log    *slog.Logger
	router *Router

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	rulesSynced chan struct{}
	services    map[string]*service

	regMu sync.Mutex
	reg   Registration
}

// service is one called app's instances.
type service struct {
	app    string
	synced chan struct{}
	once   sync.Once
	list   atomic.Pointer[instanceSet]
	next   atomic.Uint64
}

type instanceSet struct {
	all       []gray.Instance // ready ones
	byVersion map[string][]gray.Instance
	// local are the ready instances in the caller's zone (Config.Zone),
	// by version, and all of them under "": picked first.
	local map[string][]gray.Instance
}

// newInstanceSet indexes the ready instances of list, those in zone (if
// not empty) also as local.
func newInstanceSet(list []gray.Instance, zone string) *instanceSet {
	set := &instanceSet{byVersion: map[string][]gray.Instance{}, local: map[string][]gray.Instance{}}
	for _, in := range list {
		if !in.Ready {
			continue
		}
		set.all = append(set.all, in)
		set.byVersion[in.Version] = append(set.byVersion[in.Version], in)
		if zone != "" && in.Meta[gray.MetaZone] == zone {
			set.local[in.Version] = append(set.local[in.Version], in)
			set.local[""] = append(set.local[""], in)
		}
	}
	return set
}

// Start validates cfg and starts following the documents and the
// instances of cfg.Services until ctx ends or Close. It does not wait for
// them: Ready does.
func Start(ctx context.Context, cfg Config) (*Client, error) {
	if err := spec.CheckApp(cfg.App); err != nil {
		return nil, fmt.Errorf("sdk: app: %w", err)
	}
	if err := spec.CheckVersion(cfg.Version); err != nil {
		return nil, fmt.Errorf("sdk: version: %w", err)
	}
	if cfg.Rules == nil {
		return nil, errors.New("sdk: Config.Rules is required")
	}
	if len(cfg.Services) > 0 && cfg.Discovery == nil {
		return nil, errors.New("sdk: Config.Services needs Config.Discovery")
	}
	if cfg.ID == "" {
		cfg.ID = cfg.Addr
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	log := cfg.Logger.With("app", cfg.App, "version", cfg.Version)
	c := &Client{
		cfg: cfg, log: log,
		router: NewRouter(RouterConfig{Self: gray.Self{Region: cfg.Region, Zone: cfg.Zone, Labels: self(cfg).Labels()},
			Edge: cfg.Edge, Trusted: cfg.Trusted, ClientIPHeader: cfg.ClientIPHeader, Logger: log}),
		rulesSynced: make(chan struct{}),
		services:    map[string]*service{},
	}
	for _, app := range cfg.Services {
		if err := spec.CheckApp(app); err != nil {
			return nil, fmt.Errorf("sdk: services: %w", err)
		}
		c.services[app] = &service{app: app, synced: make(chan struct{})}
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.followRules()
	}()
	for _, s := range c.services {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.follow(s)
		}()
	}
	return c, nil
}

// self is the registration record of this instance.
func self(cfg Config) gray.Instance {
	meta := map[string]string{}
	for k, v := range cfg.Labels {
		meta[k] = v
	}
	for k, v := range map[string]string{gray.MetaRegion: cfg.Region, gray.MetaZone: cfg.Zone, gray.MetaEnv: cfg.Env, gray.MetaGroup: cfg.Group} {
		if v != "" {
			meta[k] = v
		}
	}
	return gray.Instance{App: cfg.App, Version: cfg.Version, ID: cfg.ID, Addr: cfg.Addr, Ready: true, Meta: meta}
}

// Router returns the client's router (to decide in other frameworks).
func (c *Client) Router() *Router { return c.router }

// Ready waits until the documents and every service's instance list have
// been read once.
func (c *Client) Ready(ctx context.Context) error {
	waits := []struct {
		what string
		ch   <-chan struct{}
	}{{"gray rules", c.rulesSynced}}
	for _, s := range c.services {
		waits = append(waits, struct {
			what string
			ch   <-chan struct{}
		}{"instances of " + s.app, s.synced})
	}
	for _, w := range waits {
		select {
		case <-w.ch:
		case <-ctx.Done():
			return fmt.Errorf("sdk: waiting for %s: %w", w.what, ctx.Err())
		}
	}
	return nil
}

// Register registers this instance (App, Version, ID, Addr, metadata) with
// cfg.Registrar, ready for traffic; it stays registered until Close or ctx
// ends. Call it once the instance serves.
func (c *Client) Register(ctx context.Context) error {
	if c.cfg.Registrar == nil {
		return errors.New("sdk: register: Config.Registrar is not set")
	}
	in := self(c.cfg)
	if err := in.Check(); err != nil {
		return fmt.Errorf("sdk: register %s %s: %w", c.cfg.App, c.cfg.Version, err)
	}
	reg, err := c.cfg.Registrar.Register(c.ctx, in)
	if err != nil {
		return fmt.Errorf("sdk: register %s %s at %s: %w", c.cfg.App, c.cfg.Version, c.cfg.Addr, err)
	}
	c.regMu.Lock()
	c.reg = reg
	c.regMu.Unlock()
	c.log.Info("registered", "id", in.ID, "addr", in.Addr)
	return nil
}

// Deregister removes this instance from the registry (before shutting
// down, so callers stop picking it); Close does it too.
func (c *Client) Deregister(ctx context.Context) error {
	c.regMu.Lock()
	reg := c.reg
	c.reg = nil
	c.regMu.Unlock()
	if reg == nil {
		return nil
	}
	if err := reg.Deregister(ctx); err != nil {
		return fmt.Errorf("sdk: deregister %s %s: %w", c.cfg.App, c.cfg.ID, err)
	}
	return nil
}

// Close deregisters the instance and stops following. It is idempotent.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Deregister(ctx)
	c.cancel()
	c.wg.Wait()
	return err
}

// followRules keeps the router in step with the published documents. A
// document that does not parse is reported and its app keeps the last
// good one.
func (c *Client) followRules() {
	var once sync.Once
	var rev int64
	docs := map[string]*gray.Document{}
	for c.ctx.Err() == nil {
		for resp := range c.cfg.Rules.Watch(c.ctx, rev) {
			if resp.Err != nil {
				c.log.Warn("gray rules unavailable; the last rules stay in force", "err", resp.Err)
				continue
			}
			if resp.Revision > 0 {
				rev = resp.Revision
			}
			if resp.Reset {
				seen := map[string]bool{}
				for _, ev := range resp.Events {
					seen[ev.Entry.App] = true
				}
				for app := range docs {
					if !seen[app] {
						delete(docs, app)
					}
				}
			}
			for _, ev := range resp.Events {
				app := ev.Entry.App
				if ev.Type == configsync.Delete {
					delete(docs, app)
					continue
				}
				d, err := gray.Parse(ev.Entry.Data)
				if err == nil && d.App != app {
					err = fmt.Errorf("app %q does not match the key it is stored under (%q)", d.App, app)
				}
				if err != nil {
					c.log.Error("rejected gray document; the last good one stays in force", "of", app, "field", spec.FieldOf(err), "err", err)
					continue
				}
				docs[app] = d
			}
			list := make([]*gray.Document, 0, len(docs))
			for _, d := range docs {
				list = append(list, d)
			}
			c.router.Replace(list)
			once.Do(func() { close(c.rulesSynced) })
		}
	}
}

// follow keeps s's instance list current.
func (c *Client) follow(s *service) {
	for c.ctx.Err() == nil {
		for list := range c.cfg.Discovery.Watch(c.ctx, s.app) {
			s.list.Store(newInstanceSet(list, c.cfg.Zone))
			s.once.Do(func() { close(s.synced) })
		}
	}
}

// Calls reports whether app is one of Config.Services.
func (c *Client) Calls(app string) bool { return c.services[app] != nil }

// Instances returns app's ready instances as last seen.
func (c *Client) Instances(app string) []gray.Instance {
	s := c.services[app]
	if s == nil {
		return nil
	}
	if set := s.list.Load(); set != nil {
		return slices.Clone(set.all)
	}
	return nil
}

// errNoInstance is returned by Transport when an app has no ready
// instance at all.
var errNoInstance = errors.New("no ready instance")

// preference is the Nepxion instance steering of one call: n-d-address
// (instances by address, whatever their version) and n-d-region.
type preference struct {
	addrs  []string
	region string
}

// pick chooses an instance of app for version (round robin), falling back
// to the document's fallback versions and then to any ready instance. A
// ready instance whose address n-d-address names wins over all of that.
// At each level an instance in the region n-d-region names is preferred,
// then one in the caller's zone (zone affinity, as Spring Cloud's
// zone-preference load balancer does); the version decided always wins
// over region and zone. skip excludes an address that just failed.
func (s *service) pick(version string, t *gray.Table, skip string, pref preference) (gray.Instance, error) {
	set := s.list.Load()
	if set == nil || len(set.all) == 0 {
		return gray.Instance{}, fmt.Errorf("%s: %w", s.app, errNoInstance)
	}
	try := func(l []gray.Instance) (gray.Instance, bool) {
		n := len(l)
		if n == 0 {
			return gray.Instance{}, false
		}
		start := int(s.next.Add(1) % uint64(n))
		for i := 0; i < n; i++ {
			in := l[(start+i)%n]
			if in.Addr != skip {
				return in, true
			}
		}
		return gray.Instance{}, false
	}
	if len(pref.addrs) > 0 {
		var named []gray.Instance
		for _, in := range set.all {
			if slices.Contains(pref.addrs, in.Addr) {
				named = append(named, in)
			}
		}
		if in, ok := try(named); ok {
			return in, nil
		}
	}
	// tryVersion picks among v's instances ("" = all): in the asked
	// region first, then local ones
	tryVersion := func(v string) (gray.Instance, bool) {
		if pref.region != "" {
			l := set.byVersion[v]
			if v == "" {
				l = set.all
			}
			var inRegion []gray.Instance
			for _, in := range l {
				if in.Meta[gray.MetaRegion] == pref.region {
					inRegion = append(inRegion, in)
				}
			}
			if in, ok := try(inRegion); ok {
				return in, true
			}
		}
		if in, ok := try(set.local[v]); ok {
			return in, true
		}
		if v == "" {
			return try(set.all)
		}
		return try(set.byVersion[v])
	}
	if version != "" {
		if in, ok := tryVersion(version); ok {
			return in, nil
		}
	}
	if t != nil {
		for _, v := range t.Fallback() {
			if in, ok := tryVersion(v); ok {
				return in, nil
			}
		}
	}
	if in, ok := tryVersion(""); ok {
		return in, nil
	}
	return gray.Instance{}, fmt.Errorf("%s: %w", s.app, errNoInstance)
}

// Middleware decides each request once (see Router.Decide) and puts the
// decision in the request's context for handlers and Transport.
func (c *Client) Middleware(next http.Handler) http.Handler {
	return Middleware(c.router, next)
}

// Middleware decides each request with r and puts the decision in the
// request's context.
func Middleware(r *Router, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		d := r.Decide(req)
		next.ServeHTTP(w, req.WithContext(NewContext(req.Context(), d)))
	})
}

// HTTPClient returns an http.Client whose transport routes calls to
// cfg.Services (see Transport).
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{Transport: c.Transport(nil)}
}

// Transport returns a RoundTripper for outbound calls. A request to
// http://{app}/... for one of cfg.Services goes to a ready instance of the
// version the request's decision names (the context's, or one made now
// from the outbound request when there is none — a call from outside any
// request), falling back to another version when that one has no
// instance; it carries the decision in n-d-version and the user key in
// the app's user key header. A call that fails to connect is retried once
// on another instance when its body can be replayed. Requests to other
// hosts go to base untouched. base nil is http.DefaultTransport.
func (c *Client) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base}
}

type transport struct {
	c    *Client
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	app := req.URL.Hostname()
	s := t.c.services[app]
	if s == nil || req.URL.Port() != "" {
		return t.base.RoundTrip(req)
	}
	d, ok := FromContext(req.Context())
	if !ok {
		d = t.c.router.Decide(req)
	}
	version, _ := d.Version(app)
	table := t.c.router.Table(app)
	pref := preference{addrs: d.Addresses(app), region: d.Region(app)}
	skip := ""
	for attempt := 0; ; attempt++ {
		in, err := s.pick(version, table, skip, pref)
		if err != nil {
			closeBody(req)
			return nil, fmt.Errorf("sdk: call %s: %w", app, err)
		}
		out := req.Clone(req.Context())
		out.URL.Host = in.Addr
		if out.Host == "" {
			out.Host = app
		}
		out.Header.Set(gray.HeaderVersion, d.Header())
		for k, v := range map[string]string{gray.HeaderVersionWeight: d.fwdWeight, gray.HeaderRegion: d.fwdRegion, gray.HeaderAddress: d.fwdAddress} {
			if v != "" {
				out.Header.Set(k, v)
			}
		}
		if key := d.UserKey(); key != "" {
			h := gray.DefaultUserHeader
			if table != nil && table.UserHeader() != "" {
				h = table.UserHeader()
			}
			if out.Header.Get(h) == "" {
				out.Header.Set(h, key)
			}
		}
		if attempt > 0 && req.GetBody != nil {
			body, berr := req.GetBody()
			if berr != nil {
				return nil, fmt.Errorf("sdk: call %s: replay body: %w", app, berr)
			}
			out.Body = body
		}
		resp, err := t.base.RoundTrip(out)
		if err == nil || attempt > 0 || !dialError(err) || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) || req.Context().Err() != nil {
			return resp, err
		}
		t.c.log.Debug("instance unreachable; trying another", "service", app, "addr", in.Addr, "err", err)
		skip = in.Addr
	}
}

func dialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
