package etcdtest

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// startTimeout bounds one start of the member.
const startTimeout = time.Minute

// Option changes the member's configuration before it starts.
type Option func(*etcdserver.Config)

// WithFsync keeps etcd's fsync on, as in production (benchmarks that
// measure the disk). By default fsync is off: much faster, and a test
// never survives a machine crash anyway.
func WithFsync() Option { return func(c *etcdserver.Config) { c.UnsafeNoFsync = false } }

// Etcd is an embedded etcd member started for one test.
type Etcd struct {
	t      testing.TB
	cfg    etcdserver.Config
	client *clientv3.Client

	mu  sync.Mutex
	srv *etcdserver.Server // nil while stopped
}

// Start starts an embedded etcd member for t and connects a client to it.
// The client is closed and then the member stopped when t ends (etcd's
// graceful stop waits for open watch streams, so clients go first). t must
// be marked by testenv.IntegrationTest.
func Start(t testing.TB, opts ...Option) *Etcd {
	t.Helper()
	testenv.AssertIntegrationTest(t, "embedded etcd")
	cfg := etcdserver.Config{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true}
	for _, o := range opts {
		o(&cfg)
	}
	e := &Etcd{t: t}
	srv := e.start(t, cfg)
	e.cfg = srv.Config() // ports resolved: a restart binds the same ones
	t.Cleanup(func() { e.Stop(t) })
	e.client = e.NewClient(t)
	return e
}

func (e *Etcd) start(t testing.TB, cfg etcdserver.Config) *etcdserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := etcdserver.Start(ctx, cfg)
	if err != nil {
		testenv.Unavailable(t, "start embedded etcd in %s: %v", cfg.Dir, err)
	}
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	return srv
}

// Client is the client connected by Start (etcdserver.NewClient's
// settings: it reconnects within a second after a restart). Do not close
// it.
func (e *Etcd) Client() *clientv3.Client { return e.client }

// NewClient connects another client, closed when t ends.
func (e *Etcd) NewClient(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := etcdserver.NewClient(e.Endpoints())
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Server is the running member (nil while stopped).
func (e *Etcd) Server() *etcdserver.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv
}

// Config is the member's configuration with its ports resolved.
func (e *Etcd) Config() etcdserver.Config { return e.cfg }

// Addr is the host:port clients connect to; it survives restarts.
func (e *Etcd) Addr() string { return e.cfg.ClientAddr }

// Endpoints is Addr as client URLs, for clientv3.Config.Endpoints.
func (e *Etcd) Endpoints() []string { return []string{"http://" + e.cfg.ClientAddr} }

// Stop stops the member, keeping its data. It is a no-op when stopped.
func (e *Etcd) Stop(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		if err := srv.Close(); err != nil {
			t.Errorf("stop embedded etcd: %v", err)
		}
	}
}

// Restart stops the member (if it runs) and starts it again on the same
// data directory and ports, as a config centre restarts.
func (e *Etcd) Restart(t testing.TB) {
	t.Helper()
	e.Stop(t)
	e.start(t, e.cfg)
}
