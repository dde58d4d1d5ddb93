package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/traffic"
)

// Header and cookie names the proxy understands or sets.
const (
	// DefaultStickyHeader is the sticky-user header when traffic.stickyHeader
	// is not set.
	DefaultStickyHeader = "X-Gray-User"
	// DefaultStickyCookie is the sticky-user cookie when traffic.stickyCookie
	// is not set.
	DefaultStickyCookie = "gray_user"
	// VersionHeader reaches the split's preview version, from trusted
	// callers only (Settings.Trust); it is removed from other requests.
	VersionHeader = gray.HeaderPreview
	// UpstreamHeader is added to every proxied response: the address of the
	// endpoint that served it.
	UpstreamHeader = "X-Graylane-Upstream"
)

// Defaults of Config.
const (
	DefaultDownFor      = 2 * time.Second
	DefaultMaxAttempts  = 8
	defaultShutdownWait = 5 * time.Second
)

// ErrNoEndpoint is returned (wrapped) when no version of the app has a ready
// endpoint; the proxy answers 503.
var ErrNoEndpoint = errors.New("no ready endpoint")

// Config configures one app's proxy.
type Config struct {
	// App names the app, for logs and errors, and in the n-d-version
	// header the proxy adds.
	App string
	// Settings are the initial routing settings (sticky names, salt,
	// trusted callers; Listen is ignored: call Listen).
	Settings Settings
	// Logger receives proxy errors (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
	// DownFor is how long an endpoint whose connection failed is skipped
	// while others are available (default 2s).
	DownFor time.Duration
	// MaxAttempts bounds the endpoints one request tries (default 8).
	MaxAttempts int
	// Transport carries requests to the endpoints (URL host = endpoint
	// address). Default: a dedicated http.Transport without environment
	// proxies or transparent compression, keeping up to 256 idle
	// connections per endpoint.
	Transport http.RoundTripper
}

// Proxy is one app's reverse proxy. It is an http.Handler; Listen serves it
// on an address. All methods are safe for concurrent use. Routing reads an
// immutable table swapped atomically on every change, so the request path
// takes no lock.
type Proxy struct {
	app         string
	log         *slog.Logger
	downFor     time.Duration
	maxAttempts int
	tr          http.RoundTripper
	custom      bool // Config.Transport was set: every request goes through rp
	rp          *httputil.ReverseProxy
	table       atomic.Pointer[table]

	mu       sync.Mutex // serialises writers of the table below
	split    traffic.Split
	routing  routing
	live     map[string]*endpoint // by addr
	draining map[string][]*endpoint

	lmu        sync.Mutex // listener
	listenAddr string
	srv        server
	ln         net.Listener
	closed     bool
}

var _ http.Handler = (*Proxy)(nil)

// New returns a proxy with no endpoints and an empty split. It does not
// listen: call Listen, or mount it as an http.Handler.
func New(cfg Config) *Proxy {
	p := &Proxy{
		app:         cfg.App,
		log:         logx.OrDiscard(cfg.Logger),
		downFor:     cfg.DownFor,
		maxAttempts: cfg.MaxAttempts,
		tr:          cfg.Transport,
		live:        map[string]*endpoint{},
		draining:    map[string][]*endpoint{},
	}
	p.log = p.log.With("app", cfg.App, "component", "proxy")
	if p.downFor <= 0 {
		p.downFor = DefaultDownFor
	}
	if p.maxAttempts <= 0 {
		p.maxAttempts = DefaultMaxAttempts
	}
	if p.maxAttempts > maxTried {
		p.maxAttempts = maxTried
	}
	if p.tr == nil {
		p.tr = newTransport()
	} else {
		p.custom = true
	}
	if err := p.configureLocked(cfg.Settings); err != nil {
		p.log.Error("invalid proxy settings; using the defaults", "err", err)
		p.configureLocked(Settings{})
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "upstream.invalid" // replaced per attempt
			pr.SetXForwarded()
		},
		Transport:    (*upstreams)(p),
		BufferPool:   bufferPool{},
		ErrorHandler: p.serveError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	p.mu.Lock()
	p.publishLocked()
	p.mu.Unlock()
	return p
}

func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil, // never an environment proxy between graylane and its instances
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		DisableCompression:    true, // pass Accept-Encoding and bodies through untouched
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// App returns the app the proxy serves.
func (p *Proxy) App() string { return p.app }

// ServeHTTP proxies one request: protocol upgrades (WebSocket) and, with
// Config.Transport set, every request through httputil.ReverseProxy;
// everything else through the forwarder (forward.go).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.custom || r.Header["Upgrade"] != nil || r.ProtoMajor != 1 {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.forward(rwSink{p, w}, r)
}

// Split returns the split in force (a copy).
func (p *Proxy) Split() traffic.Split {
	p.mu.Lock()
	defer p.mu.Unlock()
	return copySplit(p.split)
}

// SetSplit puts a split in force; it is used by the next request routed. A
// split rejected by traffic.ValidateSplit changes nothing.
func (p *Proxy) SetSplit(s traffic.Split) error {
	if err := traffic.ValidateSplit(s); err != nil {
		return fmt.Errorf("set split of app %s: %w", p.app, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.split = copySplit(s)
	p.publishLocked()
	return nil
}

func (p *Proxy) configureLocked(s Settings) error {
	r, err := compileRouting(s)
	if err != nil {
		return err
	}
	p.routing = r
	return nil
}

// Configure puts routing settings in force (sticky names, salt, trusted
// callers; s.Listen is ignored). Settings that do not validate change
// nothing.
func (p *Proxy) Configure(s Settings) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.configureLocked(s); err != nil {
		return fmt.Errorf("proxy of app %s: %w", p.app, err)
	}
	p.publishLocked()
	return nil
}

// SetEndpoints makes addrs the ready endpoints of version: addresses not
// listed any more are removed (and drain, see RemoveEndpoint), new ones are
// added, and kept ones keep their in-flight counts. An address moves
// between versions if it is listed under another one.
func (p *Proxy) SetEndpoints(version string, addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	for a, e := range p.live {
		if e.version == version && !want[a] {
			p.removeLocked(e)
		}
	}
	for _, a := range addrs {
		p.addLocked(version, a)
	}
	p.publishLocked()
}

// ReplaceEndpoints makes eps (version -> addresses) the proxy's ready
// endpoints, all versions at once: addresses not listed any more are
// removed (and drain, see RemoveEndpoint), new ones are added, kept ones
// keep their in-flight counts. It reports whether anything changed.
func (p *Proxy) ReplaceEndpoints(eps map[string][]string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]string{}
	for v, addrs := range eps {
		for _, a := range addrs {
			want[a] = v
		}
	}
	changed := false
	for a, e := range p.live {
		if v, ok := want[a]; !ok || v != e.version {
			p.removeLocked(e)
			changed = true
		}
	}
	for a, v := range want {
		if p.addLocked(v, a) {
			changed = true
		}
	}
	if changed {
		p.publishLocked()
	}
	return changed
}

// AllEndpoints returns every ready endpoint: version -> sorted addresses.
func (p *Proxy) AllEndpoints() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	for a, e := range p.live {
		out[e.version] = append(out[e.version], a)
	}
	for _, l := range out {
		sort.Strings(l)
	}
	return out
}

// AddEndpoint adds a ready endpoint of version. Adding an address already
// known under the same version does nothing.
func (p *Proxy) AddEndpoint(version, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addLocked(version, addr) {
		p.publishLocked()
	}
}

// RemoveEndpoint takes addr out of routing and reports whether it was
// routed. Once it returns no new request reaches addr; requests already
// there continue, counted by InFlight until their response bodies are read.
func (p *Proxy) RemoveEndpoint(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.live[addr]
	if !ok {
		return false
	}
	p.removeLocked(e)
	p.publishLocked()
	return true
}

// Endpoints returns the ready endpoints of version, sorted.
func (p *Proxy) Endpoints(version string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for a, e := range p.live {
		if e.version == version {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// InFlight returns the number of requests being served by addr, whether it
// is still routed or removed and draining.
func (p *Proxy) InFlight(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int64(0)
	if e, ok := p.live[addr]; ok {
		n += e.inflight.Load()
	}
	for _, e := range p.draining[addr] {
		n += e.inflight.Load()
	}
	return int(n)
}

// Drain removes addr from routing and waits until no request is in flight
// on it, or until ctx ends (returning ctx's error).
func (p *Proxy) Drain(ctx context.Context, addr string) error {
	p.RemoveEndpoint(addr)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := p.InFlight(addr)
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s of app %s: %d requests still in flight: %w", addr, p.app, n, ctx.Err())
		case <-tick.C:
		}
	}
}

func (p *Proxy) addLocked(version, addr string) bool {
	if e, ok := p.live[addr]; ok {
		if e.version == version {
			return false
		}
		p.removeLocked(e)
	}
	e := &endpoint{addr: addr, version: version, hdr: []string{addr}}
	p.live[addr] = e
	return true
}

// removeLocked marks e removed before anything else: a request that
// acquired e before this sees its count drained, one that tries after backs
// off (see endpoint.acquire).
func (p *Proxy) removeLocked(e *endpoint) {
	e.removed.Store(true)
	e.pool.close()
	delete(p.live, e.addr)
	// Forget endpoints that finished draining; keep the busy ones counted.
	kept := p.draining[e.addr][:0]
	for _, d := range p.draining[e.addr] {
		if d.inflight.Load() > 0 {
			kept = append(kept, d)
		}
	}
	if e.inflight.Load() > 0 {
		kept = append(kept, e)
	}
	if len(kept) == 0 {
		delete(p.draining, e.addr)
	} else {
		p.draining[e.addr] = kept
	}
	for a, ds := range p.draining {
		if a != e.addr && !slices.ContainsFunc(ds, func(d *endpoint) bool { return d.inflight.Load() > 0 }) {
			delete(p.draining, a)
		}
	}
}

// Listen serves the proxy on addr (host:port), replacing the listener of an
// earlier call with a different address (the old one finishes its
// requests). An empty addr stops listening. Listen on the address already in
// use does nothing.
func (p *Proxy) Listen(addr string) error {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.closed {
		return fmt.Errorf("proxy of app %s: closed", p.app)
	}
	if addr == p.listenAddr && (p.srv != nil || addr == "") {
		return nil
	}
	old := p.srv
	if addr == "" {
		p.srv, p.ln, p.listenAddr = nil, nil, ""
		shutdown(old)
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && old != nil {
		// The new address may overlap the old one (same port, other host):
		// free it and try again.
		shutdown(old)
		old = nil
		p.srv, p.ln = nil, nil
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("proxy of app %s: listen on %s: %w", p.app, addr, err)
	}
	var srv server
	if p.custom {
		hs := &http.Server{
			Handler:           p,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       serverIdleTimeout,
			ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				p.log.Error("proxy stopped serving", "addr", addr, "err", err)
			}
		}()
		srv = httpServer{hs}
	} else {
		cs := newConnServer(p, ln)
		go func() {
			if err := cs.serve(); err != nil {
				p.log.Error("proxy stopped serving", "addr", addr, "err", err)
			}
		}()
		srv = cs
	}
	p.srv, p.ln, p.listenAddr = srv, ln, addr
	p.log.Info("proxy listening", "addr", ln.Addr().String())
	shutdown(old)
	return nil
}

// ListenAddr returns the address last given to Listen ("" when not listening).
func (p *Proxy) ListenAddr() string {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	return p.listenAddr
}

// Addr returns the address the proxy listens on (with the port the system
// chose for ":0"), or "" when it does not listen.
func (p *Proxy) Addr() string {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	if p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

// Close stops listening, letting requests in flight finish for a few
// seconds, and closes idle connections to endpoints. The proxy keeps its
// split and endpoints (ServeHTTP still works) but cannot Listen again.
func (p *Proxy) Close() error {
	p.lmu.Lock()
	old := p.srv
	p.srv, p.ln, p.listenAddr, p.closed = nil, nil, "", true
	p.lmu.Unlock()
	shutdown(old)
	if c, ok := p.tr.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	p.mu.Lock()
	for _, e := range p.live {
		e.pool.close()
	}
	p.mu.Unlock()
	return nil
}

// server is what serves a listener: the proxy's own server loop, or
// net/http's with a custom Config.Transport.
type server interface {
	// shutdown stops accepting and lets requests in flight finish until
	// ctx ends.
	shutdown(ctx context.Context)
}

type httpServer struct{ *http.Server }

func (s httpServer) shutdown(ctx context.Context) {
	if err := s.Shutdown(ctx); err != nil {
		s.Close()
	}
}

func shutdown(srv server) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultShutdownWait)
	defer cancel()
	srv.shutdown(ctx)
}

func (p *Proxy) serveError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNoEndpoint):
		http.Error(w, "graylane: no ready instance of "+p.app, http.StatusServiceUnavailable)
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		w.WriteHeader(http.StatusBadGateway)
	default:
		p.log.Warn("proxy request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		http.Error(w, "graylane: upstream failed", http.StatusBadGateway)
	}
}

func copySplit(s traffic.Split) traffic.Split {
	return traffic.Split{Weights: slices.Clone(s.Weights), Preview: s.Preview}
}

// bufferPool lends 32 KiB copy buffers without allocating per request.
type bufferPool struct{}

var buffers = make(chan []byte, 512)

func (bufferPool) Get() []byte {
	select {
	case b := <-buffers:
		return b
	default:
		return make([]byte, 32<<10)
	}
}

func (bufferPool) Put(b []byte) {
	if cap(b) != 32<<10 {
		return
	}
	select {
	case buffers <- b[:cap(b)]:
	default:
	}
}

var _ io.Closer = (*Proxy)(nil)
