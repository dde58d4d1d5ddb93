package apollo

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apolloconfig/agollo/v4/storage"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo/openapi"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// Apollo is down when graylane starts: the last-known-good cache is served
// by Get, List and Watch, and Watch and Healthy say that it is the cache.
// When Apollo comes back, what changed meanwhile is delivered once.
func TestApolloDownAtStartServesCache(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	publishDoc(t, srv, "other", doc("other", "v1"))
	cfg := testConfig(t, srv)

	// A first run fills the cache. Its agollo loop may linger in a long
	// poll after Close, so it talks to Apollo through a proxy of its own,
	// closed with it: from then on only the second Source reaches Apollo.
	firstCfg := cfg
	u, err := url.Parse(srv.URL())
	must(t, err)
	firstProxy := sourcetest.NewProxy(t, u.Host)
	firstCfg.ConfigService = "http://" + firstProxy.Addr() + "/"
	first := newSource(t, firstCfg)
	waitGet(t, first, "other", string(doc("other", "v1")), within)
	cached := waitGet(t, first, "demo", string(doc("demo", "v1")), within)
	must(t, first.Close())
	firstProxy.Close()
	b, err := os.ReadFile(cachePath(cfg.CacheDir, mustDefaults(t, cfg)))
	must(t, err)
	if !strings.Contains(string(b), `"app": "demo"`) || !strings.Contains(string(b), "version: v1") {
		t.Fatalf("cache file lacks demo:\n%s", b)
	}

	srv.Stop()
	second := newSource(t, cfg)
	ctx := ctxT(t)
	e, err := second.Get(ctx, "demo")
	if err != nil || string(e.Data) != string(doc("demo", "v1")) || e.Version != cached.Version || e.Revision != cached.Revision {
		t.Fatalf("Get with Apollo down = %+v, %v; want the cached %+v", e, err, cached)
	}
	entries, rev, err := second.List(ctx)
	if err != nil || len(entries) != 2 || rev < cached.Revision {
		t.Fatalf("List with Apollo down = %d entries at %d, %v", len(entries), rev, err)
	}
	if err := second.Healthy(ctx); !errors.Is(err, configsync.ErrUnavailable) || !strings.Contains(err.Error(), "cache") {
		t.Fatalf("Healthy with Apollo down = %v, want ErrUnavailable saying the cache is served", err)
	}
	c := sourcetest.Collect(t, second.Watch(ctx, 0))
	c.WaitResponses(t, 2, within)
	rs := c.Responses()
	if !rs[0].Reset || rs[0].Err != nil || len(rs[0].Events) != 2 {
		t.Fatalf("first response = %+v, want a Reset of the two cached documents without Err", rs[0])
	}
	wantUnavailable(t, "second response", rs[1].Err)
	if len(rs[1].Events) != 0 {
		t.Fatalf("the Err response carries events: %+v", rs[1])
	}

	// A release while graylane cannot see Apollo, then Apollo comes back.
	publishDoc(t, srv, "demo", doc("demo", "v2"))
	must(t, srv.Start())
	c.WaitData(t, "demo", doc("demo", "v2"), recoverWithin)
	c.WaitHealthy(t, within)
	waitHealthy(t, second, within)
	quiet(t, srv, within, watched{second, c}) // then nothing else may have arrived
	if got := c.Data("other"); len(got) != 1 {
		t.Fatalf("unchanged other delivered %d times: %q", len(got), got)
	}
	if got := c.Data("demo"); !slices.Equal(got, []string{string(doc("demo", "v1")), string(doc("demo", "v2"))}) {
		t.Fatalf("demo delivered as %q", got)
	}
	if e := waitGet(t, second, "demo", string(doc("demo", "v2")), within); e.Revision <= cached.Revision {
		t.Fatalf("revision went from %d to %d across the restart", cached.Revision, e.Revision)
	}
}

func mustDefaults(t testing.TB, c Config) Config {
	t.Helper()
	c, err := c.withDefaults()
	must(t, err)
	return c
}

// Apollo goes down while a watch runs: the watch reports it (and keeps
// going), Get serves what was received, and after the recovery nothing is
// delivered again; a release after that still arrives.
func TestApolloDownMidWatch(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	src := newSource(t, testConfig(t, srv))
	ctx := ctxT(t)
	c := sourcetest.Collect(t, src.Watch(ctx, 0))
	c.WaitData(t, "demo", doc("demo", "v1"), within)
	waitHealthy(t, src, within)

	srv.Stop()
	wantUnavailable(t, "watch while Apollo is down", c.WaitErr(t, within))
	wantUnavailable(t, "Healthy while Apollo is down", src.Healthy(ctx))
	if e, err := src.Get(ctx, "demo"); err != nil || string(e.Data) != string(doc("demo", "v1")) {
		t.Fatalf("Get while Apollo is down = %q, %v; want the last document received", e.Data, err)
	}
	select {
	case <-c.Closed():
		t.Fatal("the watch closed during the outage")
	default:
	}

	must(t, srv.Start())
	c.WaitHealthy(t, within)
	waitHealthy(t, src, within)
	// agollo comes back after its ~30 s back-off and finds nothing new:
	// then nothing may have arrived
	quiet(t, srv, recoverWithin, watched{src, c})
	if got := c.Data("demo"); len(got) != 1 {
		t.Fatalf("demo delivered %d times across the outage: %q", len(got), got)
	}
	publishDoc(t, srv, "demo", doc("demo", "v2"))
	c.WaitData(t, "demo", doc("demo", "v2"), recoverWithin)
	if got := c.Data("demo"); len(got) != 2 {
		t.Fatalf("demo delivered as %q", got)
	}
	if n := len(c.Errs()); n == 0 {
		t.Fatal("no Err reported during the outage")
	}
}

// A malformed document is delivered untouched (the engine keeps the last
// good spec and reports this one), from the portal and through Put.
func TestInvalidContentDeliveredUntouched(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	good := doc("demo", "v1")
	publishDoc(t, srv, "demo", good)
	src := newSource(t, testConfig(t, srv))
	ctx := ctxT(t)
	c := sourcetest.Collect(t, src.Watch(ctx, 0))
	c.WaitData(t, "demo", good, within)

	bad := []byte("app: demo\nversion: [v2\n\tstrategy: {{\n")
	publishDoc(t, srv, "demo", bad)
	e := c.WaitData(t, "demo", bad, within)
	if _, err := spec.Parse(e.Data); err == nil {
		t.Fatal("the malformed document parses")
	}
	if got := waitGet(t, src, "demo", string(bad), within); string(got.Data) != string(bad) {
		t.Fatalf("Get = %q", got.Data)
	}

	// Through the Writer too; the release title cannot name a version.
	bad2 := []byte(`{"app": "demo", "version": `)
	if _, err := src.Put(ctx, "demo", bad2, ""); err != nil {
		t.Fatalf("Put of a malformed document: %v", err)
	}
	c.WaitData(t, "demo", bad2, within)
	if rel, _ := srv.LatestRelease(testAppID, DefaultCluster, DefaultNamespace); rel.Name != "graylane: demo" || rel.CreatedBy != DefaultOperator {
		t.Fatalf("release %q by %q, want %q by %q", rel.Name, rel.CreatedBy, "graylane: demo", DefaultOperator)
	}
	good3 := doc("demo", "v3")
	if _, err := src.Put(ctx, "demo", good3, versionOf(string(bad2))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	c.WaitData(t, "demo", good3, within)
	if rel, _ := srv.LatestRelease(testAppID, DefaultCluster, DefaultNamespace); rel.Name != "graylane: demo v3" {
		t.Fatalf("release title %q, want %q", rel.Name, "graylane: demo v3")
	}
}

// snapshot is what the portal holds: the namespace's items and how many
// releases it has.
type snapshot struct {
	items    map[string]string
	releases int
}

func take(t testing.TB, srv *apolloserver.Server) snapshot {
	t.Helper()
	items, err := srv.Items(testAppID, DefaultCluster, DefaultNamespace)
	must(t, err)
	return snapshot{items: items, releases: len(srv.Releases(testAppID, DefaultCluster, DefaultNamespace))}
}

func (s snapshot) same(t testing.TB, after snapshot) {
	t.Helper()
	if after.releases != s.releases {
		t.Errorf("releases: %d, were %d", after.releases, s.releases)
	}
	if len(after.items) != len(s.items) {
		t.Errorf("items: %v, were %v", after.items, s.items)
	}
	for k, v := range s.items {
		if after.items[k] != v {
			t.Errorf("item %s = %q, was %q", k, after.items[k], v)
		}
	}
}

// Writes with a token that may not write fail clearly and change nothing.
func TestTokenWithoutPermission(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	other, err := srv.CreateNamespace(testAppID, "elsewhere", apolloserver.FormatProperties)
	must(t, err)
	must(t, srv.CreateToken("no-grant"))
	must(t, srv.CreateToken("other-namespace"))
	must(t, srv.GrantNamespace("other-namespace", testAppID, other, ""))
	ctx := ctxT(t)

	// Three Sources on one server: each reaches it through its own URL.
	for _, tok := range []string{"no-grant", "other-namespace"} {
		cfg := testConfig(t, srv)
		cfg.ConfigService = viaProxy(t, srv)
		cfg.Token = tok
		src := newSource(t, cfg)
		before := take(t, srv)
		_, err := src.Put(ctx, "demo", doc("demo", "v2"), "")
		if !errors.Is(err, openapi.ErrForbidden) || !strings.Contains(err.Error(), "not granted modify and release on namespace graylane-releases") {
			t.Fatalf("%s: Put = %v, want a 403 explained", tok, err)
		}
		if errors.Is(err, configsync.ErrUnavailable) || errors.Is(err, configsync.ErrConflict) {
			t.Fatalf("%s: a 403 is neither unavailable nor a conflict: %v", tok, err)
		}
		_, err = src.Put(ctx, "newapp", doc("newapp", "v1"), configsync.Absent)
		if !errors.Is(err, openapi.ErrForbidden) {
			t.Fatalf("%s: Put of a new app = %v, want 403", tok, err)
		}
		if err := src.Delete(ctx, "demo", ""); !errors.Is(err, openapi.ErrForbidden) {
			t.Fatalf("%s: Delete = %v, want 403", tok, err)
		}
		before.same(t, take(t, srv))
	}

	cfg := testConfig(t, srv)
	cfg.ConfigService = viaProxy(t, srv)
	cfg.Token = "nobody-knows-this-token"
	src := newSource(t, cfg)
	before := take(t, srv)
	_, err = src.Put(ctx, "demo", doc("demo", "v2"), "")
	if !errors.Is(err, openapi.ErrUnauthorized) || !strings.Contains(err.Error(), "apollo.token") {
		t.Fatalf("Put with an unknown token = %v, want a 401 explained", err)
	}
	before.same(t, take(t, srv))
}

// offsetClock is the wall clock shifted by a settable offset, for the test
// server's rate limiter.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) add(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// When the release fails after the item was written (here: the token hits
// its rate limit), the item is restored: no modified-but-unreleased item is
// left and no release made.
func TestFailedReleaseRestoresItem(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	clock := &offsetClock{}
	srv := newServer(t, apolloserver.Options{Now: clock.Now})
	setupNamespace(t, srv)
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	src := newSource(t, testConfig(t, srv))
	ctx := ctxT(t)
	// Just before the release: a rate limit of 1/s whose one token is used.
	src.beforePublish = func() {
		must(t, srv.SetTokenRateLimit(testToken, 1))
		if _, _, err := src.api.LatestRelease(ctx, src.ns); err != nil { // starts the limiter (1 s warm-up)
			t.Error(err)
		}
		clock.add(1500 * time.Millisecond) // past the warm-up: one token
		if _, _, err := src.api.LatestRelease(ctx, src.ns); err != nil {
			t.Error(err)
		}
	}

	before := take(t, srv)
	_, err := src.Put(ctx, "demo", doc("demo", "v2"), "")
	if !errors.Is(err, openapi.ErrRateLimited) || !errors.Is(err, configsync.ErrUnavailable) || !strings.Contains(err.Error(), "was restored") {
		t.Fatalf("Put = %v, want a 429 on the release with the item restored", err)
	}
	before.same(t, take(t, srv))

	must(t, srv.SetTokenRateLimit(testToken, 0))
	_, err = src.Put(ctx, "fresh", doc("fresh", "v1"), configsync.Absent)
	if !errors.Is(err, openapi.ErrRateLimited) {
		t.Fatalf("Put of a new app = %v, want a 429", err)
	}
	before.same(t, take(t, srv)) // the created item was deleted again

	must(t, srv.SetTokenRateLimit(testToken, 0))
	_, err = srv.Publish(testAppID, DefaultCluster, DefaultNamespace, "portal")
	must(t, err)
	before = take(t, srv)
	err = src.Delete(ctx, "demo", "")
	if !errors.Is(err, openapi.ErrRateLimited) || !strings.Contains(err.Error(), "was restored") {
		t.Fatalf("Delete = %v, want a 429 with the item restored", err)
	}
	before.same(t, take(t, srv))

	src.beforePublish = nil
	must(t, srv.SetTokenRateLimit(testToken, 0))
	if _, err := src.Put(ctx, "demo", doc("demo", "v2"), ""); err != nil {
		t.Fatalf("Put without a limit: %v", err)
	}
	if v, _ := released(srv, "demo"); v != string(doc("demo", "v2")) {
		t.Fatalf("released demo = %q", v)
	}
}

// Apollo releases a whole namespace: Put refuses to publish someone's
// unfinished portal edit, and a conditional Put refuses to overwrite an
// unpublished edit of its own app.
func TestUnpublishedEditsAreNotPublished(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	publishDoc(t, srv, "other", doc("other", "v1"))
	src := newSource(t, testConfig(t, srv))
	ctx := ctxT(t)

	must(t, srv.SetItem(testAppID, DefaultCluster, DefaultNamespace, "other", string(doc("other", "draft"))))
	before := take(t, srv)
	_, err := src.Put(ctx, "demo", doc("demo", "v2"), "")
	if !errors.Is(err, configsync.ErrConflict) || !strings.Contains(err.Error(), "unpublished changes to other") {
		t.Fatalf("Put over another app's draft = %v, want a conflict naming it", err)
	}
	before.same(t, take(t, srv))
	if err := src.Delete(ctx, "demo", ""); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("Delete over another app's draft = %v, want a conflict", err)
	}
	before.same(t, take(t, srv))
	_, err = srv.Publish(testAppID, DefaultCluster, DefaultNamespace, "portal: other draft")
	must(t, err)

	must(t, srv.SetItem(testAppID, DefaultCluster, DefaultNamespace, "demo", string(doc("demo", "draft"))))
	before = take(t, srv)
	if _, err := src.Put(ctx, "demo", doc("demo", "v2"), versionOf(string(doc("demo", "v1")))); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("conditional Put over its own draft = %v, want a conflict", err)
	}
	before.same(t, take(t, srv))
	// An unconditional Put takes over the draft.
	if _, err := src.Put(ctx, "demo", doc("demo", "v2"), ""); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, _ := released(srv, "demo"); v != string(doc("demo", "v2")) {
		t.Fatalf("released demo = %q", v)
	}
	rel, _ := srv.LatestRelease(testAppID, DefaultCluster, DefaultNamespace)
	if rel.Name != "graylane: demo v2" {
		t.Fatalf("release title %q", rel.Name)
	}
	// Read after write: Get waits for the write to come back through agollo.
	if e, err := src.Get(ctx, "demo"); err != nil || string(e.Data) != string(doc("demo", "v2")) {
		t.Fatalf("Get right after Put = %q, %v", e.Data, err)
	}

	// Too long for an Apollo item: rejected before anything is written.
	before = take(t, srv)
	long := []byte("app: demo\nversion: v3\n# " + strings.Repeat("x", MaxValueLength) + "\n")
	if _, err := src.Put(ctx, "demo", long, ""); !errors.Is(err, spec.ErrInvalid) {
		t.Fatalf("Put of %d bytes = %v, want ErrInvalid", len(long), err)
	}
	before.same(t, take(t, srv))
}

// A cache file that cannot be used is ignored; the Source works from Apollo.
func TestBadCacheIgnored(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	cfg := testConfig(t, srv)
	path := cachePath(cfg.CacheDir, mustDefaults(t, cfg))
	must(t, os.WriteFile(path, []byte(`{"format":1,"appId":"gr`), 0o600))
	src := newSource(t, cfg)
	waitGet(t, src, "demo", string(doc("demo", "v1")), within)
	testenv.Eventually(t, within, "cache rewritten", func() error {
		f, err := loadCache(path, mustDefaults(t, cfg))
		if err != nil {
			return err
		}
		if f == nil || len(f.Entries) != 1 || f.Entries[0].Data != string(doc("demo", "v1")) {
			return errors.New("cache does not hold demo")
		}
		return nil
	})
	// A cache of another namespace is not used either.
	other := cfg
	other.Namespace = "another"
	if _, err := loadCache(path, mustDefaults(t, other)); err == nil {
		t.Fatal("a cache of another namespace was accepted")
	}
}

// agollo runs every listener call in its own goroutine, so reads arrive in
// any order: one with a notification id not above the last applied is
// dropped, and a watch never sees the older state.
func TestOlderAgolloReadDropped(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	src := newSource(t, testConfig(t, srv))
	ctx := ctxT(t)
	c := sourcetest.Collect(t, src.Watch(ctx, 0))
	c.WaitData(t, "demo", doc("demo", "v1"), within)

	// Reads as agollo delivers them, the newer one first (ids far above the
	// server's, so agollo's own reads are the older ones from now on).
	src.lis.OnNewestChange(fullChange(1001, map[string]any{"demo": string(doc("demo", "v3"))}))
	src.lis.OnNewestChange(fullChange(1000, map[string]any{"demo": string(doc("demo", "v2"))}))
	src.lis.OnNewestChange(fullChange(1001, map[string]any{"demo": string(doc("demo", "v3"))}))
	c.WaitData(t, "demo", doc("demo", "v3"), within)
	publishDoc(t, srv, "demo", doc("demo", "v4")) // agollo reads it with a smaller id: dropped
	src.lis.OnNewestChange(fullChange(1002, map[string]any{"demo": string(doc("demo", "v5")), "Not_An_App": "x"}))
	c.WaitData(t, "demo", doc("demo", "v5"), within)
	quiet(t, srv, within, watched{src, c}) // agollo has read (and the Source dropped) v4
	want := []string{string(doc("demo", "v1")), string(doc("demo", "v3")), string(doc("demo", "v5"))}
	if got := c.Data("demo"); !slices.Equal(got, want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}
	if _, ok := c.Get("Not_An_App"); ok {
		t.Fatal("a key that is not an app name was delivered")
	}
}

func fullChange(id int64, changes map[string]any) *storage.FullChangeEvent {
	e := &storage.FullChangeEvent{Changes: changes}
	e.Namespace, e.NotificationID = DefaultNamespace, id
	return e
}

// The meta server finds the config service, and an app with an access key
// is read with signed requests (by agollo and by the probe); a wrong secret
// is refused with an explanation.
func TestAccessKeyAndMetaServer(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	must(t, srv.SetAccessKeys(testAppID, "s3cret"))
	publishDoc(t, srv, "demo", doc("demo", "v1"))
	cfg := testConfig(t, srv)
	cfg.ConfigService, cfg.Meta, cfg.Secret = "", srv.URL(), "s3cret"
	src := newSource(t, cfg)
	waitGet(t, src, "demo", string(doc("demo", "v1")), within)
	waitHealthy(t, src, within)
	ctx := ctxT(t)
	if base := src.cs.base(ctx); base != srv.URL() {
		t.Fatalf("config service found through meta: %q, want %q", base, srv.URL())
	}
	wrong := &configService{fixed: srv.URL(), appID: testAppID, cluster: DefaultCluster, ns: DefaultNamespace,
		secret: "wrong", timeout: 2 * time.Second, http: &http.Client{}}
	_, err := wrong.fetch(ctx, "")
	if !errors.Is(err, errAccessKey) || !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("fetch with a wrong secret = %v, want the access key refused", err)
	}
}
