package apollo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// Test constants. agollo polls every 2 s and, after a failure, leaves the
// server alone for ~30 s: outage tests wait up to recoverWithin.
const (
	testAppID     = "graylane"
	testToken     = "graylane-token"
	within        = 20 * time.Second
	recoverWithin = 60 * time.Second
)

// testLogger writes the source's log lines to the test log until the test
// ends (agollo may call back later; those lines are dropped).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("GRAYLANE_APOLLO_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return testenv.Logger(t, level)
}

// newServer starts a test Apollo, closed when the test ends. Every test has
// its own: agollo keeps global state per server URL.
func newServer(t testing.TB, opts apolloserver.Options) *apolloserver.Server {
	t.Helper()
	srv := apolloserver.New(opts)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// setupNamespace creates graylane's app and release namespace, a token with
// the app grant, and publishes the namespace once (as an operator does
// before starting graylane: agollo backs off ~30 s on a namespace that was
// never released).
func setupNamespace(t testing.TB, srv *apolloserver.Server) {
	t.Helper()
	must(t, srv.CreateApp(testAppID, ""))
	ns, err := srv.CreateNamespace(testAppID, DefaultNamespace, apolloserver.FormatProperties)
	must(t, err)
	if ns != DefaultNamespace {
		t.Fatalf("namespace %q", ns)
	}
	must(t, srv.CreateToken(testToken))
	must(t, srv.GrantApp(testToken, testAppID))
	_, err = srv.Publish(testAppID, DefaultCluster, DefaultNamespace, "init")
	must(t, err)
}

// publishDoc edits an app's item and presses Release, as in the portal.
func publishDoc(t testing.TB, srv *apolloserver.Server, app string, data []byte) apolloserver.Release {
	t.Helper()
	must(t, srv.SetItem(testAppID, DefaultCluster, DefaultNamespace, app, string(data)))
	rel, err := srv.Publish(testAppID, DefaultCluster, DefaultNamespace, "portal: "+app)
	must(t, err)
	return rel
}

// removeDoc deletes an app's item and releases.
func removeDoc(t testing.TB, srv *apolloserver.Server, app string) {
	t.Helper()
	must(t, srv.DeleteItem(testAppID, DefaultCluster, DefaultNamespace, app))
	_, err := srv.Publish(testAppID, DefaultCluster, DefaultNamespace, "portal: delete "+app)
	must(t, err)
}

// released is app's document in the latest release.
func released(srv *apolloserver.Server, app string) (string, bool) {
	rel, ok := srv.LatestRelease(testAppID, DefaultCluster, DefaultNamespace)
	if !ok {
		return "", false
	}
	v, ok := rel.Configurations[app]
	return v, ok
}

// viaProxy returns a config service URL that reaches srv through a proxy
// of its own. agollo keeps global state per server URL and races when two
// clients in one process share one (env/server.SetDownNode writes what
// cluster/roundrobin reads unlocked): a test with two Sources on one
// server gives each its own URL.
func viaProxy(t testing.TB, srv *apolloserver.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL())
	must(t, err)
	return "http://" + sourcetest.NewProxy(t, u.Host).Addr() + "/"
}

// testConfig points a source at srv with short intervals.
func testConfig(t testing.TB, srv *apolloserver.Server) Config {
	return Config{
		ConfigService:  srv.URL(),
		Portal:         srv.PortalURL(),
		Token:          testToken,
		CacheDir:       t.TempDir(),
		RequestTimeout: 2 * time.Second,
		ProbeInterval:  500 * time.Millisecond,
	}
}

func newSource(t testing.TB, cfg Config) *Source {
	t.Helper()
	cfg.Logger = testLogger(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("apollo.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*recoverWithin)
	t.Cleanup(cancel)
	return ctx
}

// watched is a Source and the collector of one of its watches.
type watched struct {
	src *Source
	c   *sourcetest.Collector
}

// quiet waits for positive proof that nothing more will arrive short of a
// new release, so that a test can assert what was delivered instead of
// sleeping. Every client of srv — one per watched Source; no other may
// reach srv — must be up to date, shown by the test server:
//   - its last /configs read (by its label) came after the latest release
//     message and was a 304: it has every release, and agollo gets no
//     update from a 304 (this is how a client left out of a gray branch
//     shows it: its notification id stays behind, so it never waits);
//   - or else it holds a long poll with nothing newer for it
//     (WaitingPolls): agollo polls again only after it has fetched what
//     the previous poll announced, handed it to the Source and paused 2 s;
//
// and every collector must hold each revision its Source has applied.
func quiet(t testing.TB, srv *apolloserver.Server, within time.Duration, ws ...watched) {
	t.Helper()
	testenv.Eventually(t, within, "apollo clients up to date, their watches drained", func() error {
		latest, waiting := srv.LatestMessage(), 0
		for _, w := range ws {
			r, ok := srv.LastConfigRead(w.src.cfg.AppID, w.src.cfg.Cluster, w.src.cfg.Namespace, w.src.cfg.Label)
			if !ok || r.Status != http.StatusNotModified || r.Message < latest {
				waiting++ // not shown by a read: it must be waiting
			}
		}
		if n := srv.WaitingPolls(); n != waiting {
			return fmt.Errorf("%d long polls wait with nothing newer, want %d (clients not shown current by a 304 read)", n, waiting)
		}
		for i, w := range ws {
			w.src.mu.Lock()
			rev := w.src.hub.rev
			w.src.mu.Unlock()
			if got := w.c.Revision(); got != rev {
				return fmt.Errorf("watch %d at revision %d, its source at %d", i, got, rev)
			}
		}
		return nil
	})
}

// waitGet polls Get until app's document is want.
func waitGet(t testing.TB, s *Source, app, want string, d time.Duration) configsync.Entry {
	t.Helper()
	var got configsync.Entry
	testenv.Eventually(t, d, fmt.Sprintf("Get(%s) = %q", app, want), func() error {
		e, err := s.Get(ctxT(t), app)
		if err != nil {
			return err
		}
		if string(e.Data) != want {
			return fmt.Errorf("got %q", e.Data)
		}
		got = e
		return nil
	})
	return got
}

// waitHealthy polls Healthy until it passes.
func waitHealthy(t testing.TB, s *Source, d time.Duration) {
	t.Helper()
	testenv.Eventually(t, d, "Healthy", func() error { return s.Healthy(ctxT(t)) })
}

func wantUnavailable(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("%s: err = %v, want one wrapping configsync.ErrUnavailable", what, err)
	}
}

func doc(app, version string) []byte {
	return []byte(fmt.Sprintf("app: %s\nversion: %s\n", app, version))
}
