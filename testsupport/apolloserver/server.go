package apolloserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value is usable: every field has the
// default that Apollo itself uses (or, for addresses, a free loopback port).
type Options struct {
	// Addr is where the config service (and the meta server embedded in it,
	// as in Apollo) listens. Default "127.0.0.1:0".
	Addr string
	// PortalAddr is where the Portal (Open API) listens. Default "127.0.0.1:0".
	// Apollo runs the portal as a separate process (port 8070 vs 8080); so
	// does this server.
	PortalAddr string
	// LongPollTimeout is how long /notifications/v2 holds a request before it
	// answers 304. Apollo: 60 s (bizConfig.longPollingTimeoutInMilli).
	LongPollTimeout time.Duration
	// DataCenter is used as the data centre of a client that sends no
	// dataCenter query parameter. Apollo itself only uses the parameter (the
	// Java client sends its idc; agollo never sends one), so the default ""
	// is the faithful setting.
	DataCenter string
	// Envs are the environments the portal knows (case-insensitive).
	// Default {"DEV"}. An unknown env in an Open API path fails as in Apollo
	// (500, IllegalArgumentException "<ENV> not exist").
	Envs []string
	// Now is the clock used for release keys, branch names, DTO timestamps,
	// the access-key time check and the Open API rate limiter.
	// Default time.Now. Long-poll holds always use real timers.
	Now func() time.Time
	// AccessKeyTimeTolerance is the allowed client clock skew for signed
	// requests. Apollo: 60 s (apollo.access-key.auth-time-diff-tolerance).
	AccessKeyTimeTolerance time.Duration
	// ItemKeyLengthLimit and ItemValueLengthLimit are Apollo's
	// item.key.length.limit (128) and item.value.length.limit (20000),
	// counted in UTF-16 code units like Java's String.length().
	ItemKeyLengthLimit   int
	ItemValueLengthLimit int
	// Logf, when set, receives one line per request and per notable event.
	Logf func(format string, args ...any)
}

// Server is an in-memory Apollo: config service + meta server on URL(), Portal
// Open API on PortalURL(). Create it with New, then Start it; set data up with
// the admin methods (CreateApp, CreateNamespace, ...).
type Server struct {
	opts Options

	mu sync.Mutex // guards st
	st *state

	watchMu  sync.Mutex
	watchers map[string]map[*watcher]struct{} // lower-cased release-message key -> held polls

	readsMu sync.Mutex
	reads   map[string]ConfigRead // last /configs answer by app, cluster, namespace, label (LastConfigRead)

	limMu    sync.Mutex
	limiters map[string]*rateLimiter

	life       sync.Mutex // guards the fields below (never held by handlers)
	running    bool
	closed     bool
	cfgHTTP    *http.Server
	portalHTTP *http.Server
	stopCh     chan struct{}
	inflight   inflight

	addrMu     sync.Mutex // guards the bound addresses (kept across Stop/Start)
	cfgAddr    string
	portalAddr string
}

// inflight counts running handlers; unlike sync.WaitGroup it tolerates a
// handler starting while Stop waits.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{}
}

func (f *inflight) add() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 && f.zero != nil {
		close(f.zero)
		f.zero = nil
	}
	f.mu.Unlock()
}

func (f *inflight) wait(timeout time.Duration) {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return
	}
	if f.zero == nil {
		f.zero = make(chan struct{})
	}
	z := f.zero
	f.mu.Unlock()
	select {
	case <-z:
	case <-time.After(timeout):
	}
}

// New creates a stopped server with an empty store (plus Apollo's default
// portal user "apollo").
func New(opts Options) *Server {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.PortalAddr == "" {
		opts.PortalAddr = "127.0.0.1:0"
	}
	if opts.LongPollTimeout <= 0 {
		opts.LongPollTimeout = 60 * time.Second
	}
	if len(opts.Envs) == 0 {
		opts.Envs = []string{"DEV"}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AccessKeyTimeTolerance <= 0 {
		opts.AccessKeyTimeTolerance = 60 * time.Second
	}
	if opts.ItemKeyLengthLimit <= 0 {
		opts.ItemKeyLengthLimit = 128
	}
	if opts.ItemValueLengthLimit <= 0 {
		opts.ItemValueLengthLimit = 20000
	}
	s := &Server{
		opts:     opts,
		st:       newState(),
		watchers: map[string]map[*watcher]struct{}{},
		reads:    map[string]ConfigRead{},
		limiters: map[string]*rateLimiter{},
	}
	s.st.now, s.st.keyLimit, s.st.valueLimit = opts.Now, opts.ItemKeyLengthLimit, opts.ItemValueLengthLimit
	return s
}

// Start binds both listeners and serves. The first Start binds Options.Addr
// and Options.PortalAddr; a Start after Stop binds the very same ports again,
// so clients see Apollo come back with all its state.
func (s *Server) Start() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return errors.New("apolloserver: Start after Close")
	}
	if s.running {
		return errors.New("apolloserver: already running")
	}
	cfgAddr, portalAddr := s.opts.Addr, s.opts.PortalAddr
	s.addrMu.Lock()
	if s.cfgAddr != "" {
		cfgAddr, portalAddr = s.cfgAddr, s.portalAddr
	}
	s.addrMu.Unlock()
	cl, err := listenRetry(cfgAddr)
	if err != nil {
		return fmt.Errorf("apolloserver: config service listen %s: %w", cfgAddr, err)
	}
	pl, err := listenRetry(portalAddr)
	if err != nil {
		cl.Close()
		return fmt.Errorf("apolloserver: portal listen %s: %w", portalAddr, err)
	}
	s.addrMu.Lock()
	s.cfgAddr, s.portalAddr = cl.Addr().String(), pl.Addr().String()
	s.addrMu.Unlock()
	s.stopCh = make(chan struct{})
	s.cfgHTTP = &http.Server{Handler: s.track(http.HandlerFunc(s.serveConfigService), s.stopCh), ReadHeaderTimeout: 10 * time.Second}
	s.portalHTTP = &http.Server{Handler: s.track(http.HandlerFunc(s.servePortal), s.stopCh), ReadHeaderTimeout: 10 * time.Second}
	go s.cfgHTTP.Serve(cl)
	go s.portalHTTP.Serve(pl)
	s.running = true
	s.logf("started: config service http://%s/, portal http://%s/", cl.Addr(), pl.Addr())
	return nil
}

// listenRetry binds addr; when a fixed port was just released it may take a
// moment before the kernel lets it go, so retry briefly.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) || strings.HasSuffix(addr, ":0") {
			return l, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop simulates "Apollo is down": it releases every held long poll at once
// (the connection is cut, as when the process dies), closes both listeners
// and all connections, and waits for handlers to return. The store is kept;
// Start serves it again on the same ports. Stop on a stopped server is a no-op.
func (s *Server) Stop() {
	s.life.Lock()
	defer s.life.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if !s.running {
		return
	}
	close(s.stopCh)
	s.cfgHTTP.Close()
	s.portalHTTP.Close()
	s.inflight.wait(5 * time.Second)
	s.running = false
	s.logf("stopped")
}

// Close stops the server for good. Unlike httptest.Server.Close it does not
// wait for held long polls to time out: they are released at once.
func (s *Server) Close() {
	s.life.Lock()
	defer s.life.Unlock()
	s.stopLocked()
	s.closed = true
}

// URL is the config service base URL, with a trailing slash, e.g.
// "http://127.0.0.1:41234/". It serves /configs, /configfiles,
// /notifications/v2 and the meta server's /services/config, exactly like an
// Apollo config service (which embeds the meta server). Give it to agollo as
// AppConfig.IP. Empty before the first Start.
func (s *Server) URL() string {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	if s.cfgAddr == "" {
		return ""
	}
	return "http://" + s.cfgAddr + "/"
}

// PortalURL is the portal base URL with a trailing slash; the Open API lives
// under PortalURL()+"openapi/v1/". Empty before the first Start.
func (s *Server) PortalURL() string {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	if s.portalAddr == "" {
		return ""
	}
	return "http://" + s.portalAddr + "/"
}

// Running reports whether the server is serving.
func (s *Server) Running() bool {
	s.life.Lock()
	defer s.life.Unlock()
	return s.running
}

// track counts the handler and cancels its context when the serving period
// (stop) ends, so held long polls return at once.
func (s *Server) track(h http.Handler, stop <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.add()
		defer s.inflight.done()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r.WithContext(ctx))
		if s.opts.Logf != nil {
			s.logf("%s %s -> %d", r.Method, r.URL.RequestURI(), rec.status())
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf("apolloserver: "+format, args...)
	}
}

func (s *Server) now() time.Time { return s.opts.Now() }
