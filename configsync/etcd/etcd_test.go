package etcd_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// server is an embedded etcd that tests can stop and start on the same
// data directory and port. Clients reach it through a front proxy that a
// stop cuts first: etcd's graceful stop otherwise waits about seven seconds
// for open watch streams, and a crash-like stop is what a watch must survive
// anyway.
type server struct {
	etcd    *etcdtest.Etcd
	front   *sourcetest.Proxy
	restore func()
}

func startServer(t testing.TB) *server {
	t.Helper()
	s := &server{etcd: etcdtest.Start(t)}
	s.front = sourcetest.NewProxy(t, s.etcd.Addr())
	return s
}

func (s *server) current() *etcdserver.Server { return s.etcd.Server() }

// addr is where clients connect.
func (s *server) addr() string { return s.front.Addr() }

func (s *server) stop(t testing.TB) {
	t.Helper()
	s.restore = s.front.Cut()
	s.etcd.Stop(t)
}

func (s *server) start(t testing.TB) {
	t.Helper()
	s.etcd.Restart(t)
	s.restore()
}

func (s *server) restart(t testing.TB) { s.stop(t); s.start(t) }

// client connects to addr (the server, or a proxy in front of it).
func client(t testing.TB, addr string) *clientv3.Client {
	t.Helper()
	c, err := etcdserver.NewClient([]string{"http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// retry runs op until it succeeds: the console's client may still be
// reconnecting after a restart.
func retry(t testing.TB, what string, op func(ctx context.Context) error) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return op(ctx)
	})
}

// fixture is one Source behind a cuttable proxy, plus a direct "console"
// client.
type fixture struct {
	srv     *server
	proxy   *sourcetest.Proxy
	console *clientv3.Client
	client  *clientv3.Client // the Source's, through the proxy
	source  *etcd.Source
}

func newFixture(t testing.TB, srv *server) *fixture {
	t.Helper()
	f := &fixture{srv: srv}
	f.proxy = sourcetest.NewProxy(t, srv.addr())
	f.console = client(t, srv.addr())
	f.client = client(t, f.proxy.Addr())
	f.source = etcd.New(etcd.Config{Client: f.client, ProbeInterval: 200 * time.Millisecond, RequestTimeout: time.Second,
		RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	t.Cleanup(func() { f.source.Close() })
	return f
}

func (f *fixture) put(t testing.TB, key string, data []byte) int64 {
	t.Helper()
	var rev int64
	retry(t, "put "+key, func(ctx context.Context) error {
		r, err := f.console.Put(ctx, key, string(data))
		if err == nil {
			rev = r.Header.Revision
		}
		return err
	})
	return rev
}

func (f *fixture) del(t testing.TB, key string) {
	t.Helper()
	retry(t, "delete "+key, func(ctx context.Context) error {
		_, err := f.console.Delete(ctx, key)
		return err
	})
}

func (f *fixture) harness() *sourcetest.Harness {
	return &sourcetest.Harness{
		Source:  f.source,
		Writer:  f.source,
		Publish: func(t testing.TB, app string, data []byte) { f.put(t, etcd.DefaultPrefix+app, data) },
		Remove:  func(t testing.TB, app string) { f.del(t, etcd.DefaultPrefix+app) },
		Fetch: func(t testing.TB, app string) (data []byte, ok bool) {
			retry(t, "get "+app, func(ctx context.Context) error {
				r, err := f.console.Get(ctx, etcd.DefaultPrefix+app)
				if err == nil && len(r.Kvs) == 1 {
					data, ok = r.Kvs[0].Value, true
				}
				return err
			})
			return data, ok
		},
		Restart:     f.srv.restart,
		Cut:         func(testing.TB) func() { return f.proxy.Cut() },
		CutReported: true,
		Settle:      300 * time.Millisecond,
		Eventually:  15 * time.Second,
	}
}

func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := startServer(t)
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness { return newFixture(t, srv).harness() })
}

func watch(t testing.TB, s configsync.Source, after int64, held *configsync.State) (*sourcetest.Collector, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return sourcetest.CollectFrom(t, s.Watch(ctx, after), held), cancel
}

const wait = 15 * time.Second

func TestVersionIsModRevision(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, startServer(t))
	ctx := context.Background()
	rev := f.put(t, "/graylane/apps/demo", []byte("x"))
	e, err := f.source.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != strconv.FormatInt(rev, 10) || e.Revision != rev {
		t.Fatalf("entry %+v, want version and revision %d", e, rev)
	}
	put, err := f.source.Put(ctx, "demo", []byte("y"), e.Version)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.console.Get(ctx, "/graylane/apps/demo")
	if err != nil {
		t.Fatal(err)
	}
	if put.Version != strconv.FormatInt(r.Kvs[0].ModRevision, 10) {
		t.Fatalf("Put returned version %s, key has mod revision %d", put.Version, r.Kvs[0].ModRevision)
	}
}

func TestIgnoresKeysThatAreNotApps(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, startServer(t))
	ctx := context.Background()
	c, _ := watch(t, f.source, 0, nil)
	for _, k := range []string{"/graylane/apps/demo/extra", "/graylane/apps/Bad_Name", "/graylane/apps/", "/graylane/appsx", "/other/demo"} {
		f.put(t, k, []byte("ignored"))
	}
	f.put(t, "/graylane/apps/demo", []byte("kept"))
	c.WaitData(t, "demo", []byte("kept"), wait)
	if st := c.State(); st.Len() != 1 {
		t.Fatalf("watch holds %v, want only demo", st.Entries())
	}
	entries, _, err := f.source.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].App != "demo" {
		t.Fatalf("List = %+v, want only demo", entries)
	}
	if _, err := f.source.Get(ctx, "Bad_Name"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("Get of an invalid app name: %v, want ErrNotFound", err)
	}
	if _, err := f.source.Put(ctx, "demo/extra", []byte("x"), ""); err == nil || !strings.Contains(err.Error(), "demo/extra") {
		t.Fatalf("Put of an invalid app name: %v, want an error naming it", err)
	}
}

func TestPrefixes(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := startServer(t)
	f := newFixture(t, srv)
	other := etcd.New(etcd.Config{Client: f.client, Prefix: "/team-b/apps"}) // trailing slash added
	defer other.Close()
	if other.Prefix() != "/team-b/apps/" {
		t.Fatalf("prefix %q", other.Prefix())
	}
	ctx := context.Background()
	if _, err := other.Put(ctx, "demo", []byte("b"), configsync.Absent); err != nil {
		t.Fatal(err)
	}
	if _, err := f.source.Get(ctx, "demo"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("default prefix sees team-b's document: %v", err)
	}
	r, err := f.console.Get(ctx, "/team-b/apps/demo")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "b" {
		t.Fatalf("key /team-b/apps/demo = %v, %v", r, err)
	}
}

func TestConflictErrorNamesApp(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, startServer(t))
	ctx := context.Background()
	f.put(t, "/graylane/apps/demo", []byte("x"))
	_, err := f.source.Put(ctx, "demo", []byte("y"), configsync.Absent)
	if !errors.Is(err, configsync.ErrConflict) || !strings.Contains(err.Error(), `"demo"`) {
		t.Fatalf("err = %v, want ErrConflict naming demo", err)
	}
	if _, err := f.source.Put(ctx, "demo", []byte("y"), "not-a-revision"); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("non-numeric version: err = %v, want ErrConflict", err)
	}
}

// A watch resumed from a compacted revision re-reads and sends a Reset
// holding exactly the current documents.
func TestResumeFromCompactedRevision(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := startServer(t)
	f := newFixture(t, srv)
	ctx := context.Background()
	c1, cancel1 := watch(t, f.source, 0, nil)
	f.put(t, "/graylane/apps/a", []byte("a1"))
	f.put(t, "/graylane/apps/gone", []byte("g1"))
	c1.WaitData(t, "a", []byte("a1"), wait)
	c1.WaitData(t, "gone", []byte("g1"), wait)
	cancel1()
	c1.WaitClosed(t, wait)
	held := c1.State()

	f.put(t, "/graylane/apps/a", []byte("a2"))
	f.put(t, "/graylane/apps/b", []byte("b1"))
	f.del(t, "/graylane/apps/gone")
	last := f.put(t, "/graylane/apps/b", []byte("b2"))
	if err := srv.current().Compact(ctx, last); err != nil {
		t.Fatal(err)
	}

	c2, _ := watch(t, f.source, held.Revision(), held)
	c2.WaitResponses(t, 1, wait)
	first := c2.Responses()[0]
	if !first.Reset || first.Err != nil {
		t.Fatalf("first response after resuming from a compacted revision = %+v, want a Reset", first)
	}
	if first.Revision < last {
		t.Fatalf("Reset at revision %d, want >= %d", first.Revision, last)
	}
	want := map[string]string{"a": "a2", "b": "b2"}
	got := map[string]string{}
	for _, e := range c2.State().Entries() {
		got[e.App] = string(e.Data)
	}
	if len(got) != len(want) || got["a"] != "a2" || got["b"] != "b2" {
		t.Fatalf("state after Reset = %v, want %v", got, want)
	}
	// The watch goes on from there.
	f.put(t, "/graylane/apps/a", []byte("a3"))
	c2.WaitData(t, "a", []byte("a3"), wait)
}

// A running watch cut off from etcd while the history it needs is compacted
// away gets a Reset once it is back.
func TestCompactionWhileCutOff(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := startServer(t)
	f := newFixture(t, srv)
	ctx := context.Background()
	c, _ := watch(t, f.source, 0, nil)
	f.put(t, "/graylane/apps/a", []byte("a1"))
	f.put(t, "/graylane/apps/same", []byte("s1"))
	f.put(t, "/graylane/apps/gone", []byte("g1"))
	c.WaitData(t, "gone", []byte("g1"), wait)
	c.WaitData(t, "a", []byte("a1"), wait)

	restore := f.proxy.Cut()
	if err := c.WaitErr(t, wait); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("cut reported as %v", err)
	}
	f.put(t, "/graylane/apps/a", []byte("a2"))
	f.del(t, "/graylane/apps/gone")
	last := f.put(t, "/graylane/apps/b", []byte("b1"))
	if err := srv.current().Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	restore()

	c.WaitData(t, "b", []byte("b1"), wait)
	c.WaitData(t, "a", []byte("a2"), wait)
	c.WaitGone(t, "gone", wait)
	c.WaitHealthy(t, wait)
	var resets int
	for _, r := range c.Responses() {
		if r.Reset {
			resets++
		}
	}
	if resets != 2 {
		t.Fatalf("%d Resets, want the initial one and one after the compaction", resets)
	}
	if got := c.Data("same"); len(got) != 1 {
		t.Fatalf("unchanged app delivered %d times: %q", len(got), got)
	}
}

// A watch whose client is cut off reports it, and delivers what changed
// once reconnected, from where it was.
func TestResumeAfterCut(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := startServer(t)
	f := newFixture(t, srv)
	c, _ := watch(t, f.source, 0, nil)
	f.put(t, "/graylane/apps/a", []byte("a1"))
	c.WaitData(t, "a", []byte("a1"), wait)
	for round := 2; round <= 3; round++ {
		restore := f.proxy.Cut()
		before := len(c.Errs())
		c.UntilResponses(t, wait, "a new outage reported", func(rs []configsync.WatchResponse) bool {
			n := 0
			for _, r := range rs {
				if r.Err != nil {
					n++
				}
			}
			return n > before
		})
		if err := f.source.Healthy(context.Background()); !errors.Is(err, configsync.ErrUnavailable) {
			t.Fatalf("Healthy while cut off: %v", err)
		}
		_, err := f.source.Get(context.Background(), "a")
		if !errors.Is(err, configsync.ErrUnavailable) || !strings.Contains(err.Error(), `"a"`) {
			t.Fatalf("Get while cut off: %v, want ErrUnavailable naming the app", err)
		}
		data := []byte("a" + strconv.Itoa(round))
		f.put(t, "/graylane/apps/a", data)
		restore()
		c.WaitData(t, "a", data, wait)
		c.WaitHealthy(t, wait)
	}
	if got := c.Data("a"); len(got) != 3 {
		t.Fatalf("a delivered as %q", got)
	}
	for _, r := range c.Responses() {
		if r.Reset && r.Revision > c.Responses()[0].Revision {
			t.Fatalf("a reconnect without compaction sent a Reset: %+v", r)
		}
	}
}

// Stopping the server is noticed; a watch outlives a restart.
func TestServerDownReported(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := startServer(t)
	f := newFixture(t, srv)
	c, _ := watch(t, f.source, 0, nil)
	f.put(t, "/graylane/apps/a", []byte("a1"))
	c.WaitData(t, "a", []byte("a1"), wait)
	srv.stop(t)
	if err := c.WaitErr(t, wait); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("outage reported as %v", err)
	}
	srv.start(t)
	f.put(t, "/graylane/apps/a", []byte("a2"))
	c.WaitData(t, "a", []byte("a2"), wait)
	c.WaitHealthy(t, wait)
}

func TestCloseEndsWatches(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, startServer(t))
	c := sourcetest.Collect(t, f.source.Watch(context.Background(), 0))
	c.WaitResponses(t, 1, wait)
	f.source.Close()
	c.WaitClosed(t, wait)
	// The client still works: Close does not close it.
	if _, err := f.client.Get(context.Background(), "x"); err != nil {
		t.Fatalf("client after Source.Close: %v", err)
	}
}
