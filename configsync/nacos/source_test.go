package nacos_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

const group = "GRAYLANE_TEST"

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

const specDemo = `app: demo
version: v2
replicas: 4
strategy:
  type: canary
  steps:
    - setWeight: 25
    - pause: {duration: 5s}
    - setWeight: 100
backend:
  type: process
  process:
    command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"]
    proxy: 127.0.0.1:8081
`

func TestPutGetDeleteCompareAndSwap(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx := ctxT(t)

	if _, err := s.Get(ctx, "demo"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	e1, err := s.Put(ctx, "demo", []byte("version: v1\n"), configsync.Absent)
	if err != nil {
		t.Fatalf("put absent: %v", err)
	}
	if e1.App != "demo" || e1.Version != md5Hex("version: v1\n") || e1.Revision <= 0 {
		t.Fatalf("put returned %+v", e1)
	}
	got := waitGet(t, s, "demo", "version: v1\n")
	if got.Version != e1.Version || got.Revision != e1.Revision {
		t.Fatalf("get version/revision %s/%d, put said %s/%d", got.Version, got.Revision, e1.Version, e1.Revision)
	}

	// Absent on an existing document: conflict, nothing written.
	if _, err := s.Put(ctx, "demo", []byte("version: other\n"), configsync.Absent); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("put absent over existing: %v, want ErrConflict", err)
	}
	// A stale version: conflict.
	if _, err := s.Put(ctx, "demo", []byte("version: other\n"), md5Hex("something else")); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("put with stale version: %v, want ErrConflict", err)
	}
	// The version read: accepted.
	e2, err := s.Put(ctx, "demo", []byte("version: v2\n"), e1.Version)
	if err != nil {
		t.Fatalf("put with current version: %v", err)
	}
	if e2.Revision <= e1.Revision {
		t.Fatalf("revision did not increase: %d -> %d", e1.Revision, e2.Revision)
	}
	waitGet(t, s, "demo", "version: v2\n")
	// The old version is stale now.
	if _, err := s.Put(ctx, "demo", []byte("version: v3\n"), e1.Version); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("put with replaced version: %v, want ErrConflict", err)
	}
	// Unconditional put.
	if _, err := s.Put(ctx, "demo", []byte("version: v4\n"), ""); err != nil {
		t.Fatalf("unconditional put: %v", err)
	}
	e4 := waitGet(t, s, "demo", "version: v4\n")

	// Delete with a stale version or Absent: conflict, document stays.
	if err := s.Delete(ctx, "demo", e2.Version); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("delete with stale version: %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, "demo", configsync.Absent); !errors.Is(err, configsync.ErrConflict) {
		t.Fatalf("delete expecting absent: %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, "demo", e4.Version); err != nil {
		t.Fatalf("delete with current version: %v", err)
	}
	waitGet(t, s, "demo", "")
	// Deleting a missing document is not an error.
	if err := s.Delete(ctx, "demo", ""); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	if err := s.Delete(ctx, "demo", e4.Version); err != nil {
		t.Fatalf("delete missing with a version: %v", err)
	}
	// And Absent works again for a re-create.
	if _, err := s.Put(ctx, "demo", []byte("version: v5\n"), configsync.Absent); err != nil {
		t.Fatalf("re-create with Absent: %v", err)
	}
	waitGet(t, s, "demo", "version: v5\n")
}

func TestInvalidInput(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx := ctxT(t)
	for _, app := range []string{"", "Upper", "has.dot", "graylane.index", "-x"} {
		if _, err := s.Put(ctx, app, []byte("x: 1"), ""); err == nil {
			t.Errorf("put app %q: no error", app)
		}
		if _, err := s.Get(ctx, app); err == nil || errors.Is(err, configsync.ErrUnavailable) {
			t.Errorf("get app %q: %v, want a validation error", app, err)
		}
	}
	if _, err := s.Put(ctx, "demo", nil, ""); err == nil {
		t.Error("put empty document: no error")
	}
}

func TestListFollowsIndex(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx := ctxT(t)

	for _, app := range []string{"a", "b", "c"} {
		if _, err := s.Put(ctx, app, []byte("app: "+app+"\n"), configsync.Absent); err != nil {
			t.Fatalf("put %s: %v", app, err)
		}
	}
	waitList(t, s, "a b c")
	testenv.Eventually(t, within, "index lists a b c", func() error {
		idx, _ := srv.GetConfig(t, group, nacos.DefaultIndexDataID)
		if !strings.Contains(idx, "- a\n  - b\n  - c\n") {
			return fmt.Errorf("index %q", idx)
		}
		return nil
	})

	// A document the index does not name is not visible...
	srv.PublishConfig(t, group, "stray", "app: stray\n")
	// ...and an app the operator drops from the index disappears (its
	// document stays in Nacos); a name without a document is harmless.
	srv.PublishConfig(t, group, nacos.DefaultIndexDataID, "apps: [a, c, ghost]\n")
	waitList(t, s, "a c")
	waitGet(t, s, "b", "")
	if got, ok := srv.GetConfig(t, group, "b"); !ok || got != "app: b\n" {
		t.Fatalf("b's document in Nacos: %q, %v", got, ok)
	}
	waitGet(t, s, "ghost", "")
	if _, err := s.Get(ctx, "stray"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("get of a document the index does not name: %v, want ErrNotFound", err)
	}

	// Put lists the app again; Delete removes it from the index.
	if _, err := s.Put(ctx, "b", []byte("app: b\nagain: true\n"), ""); err != nil {
		t.Fatal(err)
	}
	waitList(t, s, "a b c")
	if err := s.Delete(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	waitList(t, s, "b c")
	testenv.Eventually(t, within, "index without a", func() error {
		idx, _ := srv.GetConfig(t, group, nacos.DefaultIndexDataID)
		if strings.Contains(idx, "- a\n") || !strings.Contains(idx, "- b\n") {
			return fmt.Errorf("index %q", idx)
		}
		return nil
	})

	// A malformed index fails List (it must not read as "no apps").
	srv.PublishConfig(t, group, nacos.DefaultIndexDataID, "app: [b]\n")
	testenv.Eventually(t, within, "list fails on a malformed index", func() error {
		_, _, err := s.List(ctx)
		if errors.Is(err, nacos.ErrBadIndex) {
			return nil
		}
		return fmt.Errorf("list: %v", err)
	})
	// Put reads the index from the server, whose read cache lags a write
	// by up to a second (the watch above may be faster): wait until a
	// read there shows the malformed index.
	testenv.Eventually(t, within, "the server serves the malformed index", func() error {
		idx, _ := srv.GetConfig(t, group, nacos.DefaultIndexDataID)
		return testenv.Check(idx == "app: [b]\n", "index %q", idx)
	})
	if _, err := s.Put(ctx, "d", []byte("app: d\n"), ""); !errors.Is(err, nacos.ErrBadIndex) {
		t.Fatalf("put with a malformed index: %v, want ErrBadIndex", err)
	}
}

func waitList(t testing.TB, s *nacos.Source, want string) {
	t.Helper()
	testenv.Eventually(t, within, "list = "+want, func() error {
		entries, rev, err := s.List(ctxT(t))
		if err != nil {
			return err
		}
		var apps []string
		for _, e := range entries {
			if string(e.Data) != string(e.Data) || e.Version != md5Hex(string(e.Data)) || e.Revision > rev {
				return fmt.Errorf("entry %+v at list revision %d", e, rev)
			}
			apps = append(apps, e.App)
		}
		if got := strings.Join(apps, " "); got != want {
			return fmt.Errorf("listed %q", got)
		}
		return nil
	})
}

// chanLock is an in-process IndexLocker standing in for the etcd mutex
// graylane's replicas share.
type chanLock chan struct{}

func (l chanLock) Lock(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l chanLock) Unlock(context.Context) error { <-l; return nil }

// Two graylanes adding apps at once never lose each other's index entries
// when they share graylane's index lock: on Polaris, which ignores casMd5
// on updates, the lock is what makes the read-compare-write safe.
func TestConcurrentWritersShareTheIndex(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	lock := make(chanLock, 1)
	s1 := newSourceWith(t, srv, group, lock)
	s2 := newSourceWith(t, srv, group, lock)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i, s := range []*nacos.Source{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 4 {
				app := fmt.Sprintf("app-%d-%d", i, j)
				if _, err := s.Put(ctx, app, []byte("app: "+app+"\n"), ""); err != nil {
					errs <- fmt.Errorf("put %s: %w", app, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitList(t, s1, "app-0-0 app-0-1 app-0-2 app-0-3 app-1-0 app-1-1 app-1-2 app-1-3")
}

func TestWatchDeliversChangesOnce(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx, cancel := context.WithCancel(ctxT(t))

	if _, err := s.Put(ctx, "pre", []byte("app: pre\n"), ""); err != nil {
		t.Fatal(err)
	}
	waitList(t, s, "pre")
	rec := record(ctx, s.Watch(ctx, 0))
	rec.waitState(t, map[string]string{"pre": "app: pre\n"})
	if first := rec.all()[0]; !first.Reset {
		t.Fatalf("first response is not a Reset: %+v", first)
	}

	start := time.Now()
	if _, err := s.Put(ctx, "demo", []byte(specDemo), configsync.Absent); err != nil {
		t.Fatal(err)
	}
	rec.waitState(t, map[string]string{"pre": "app: pre\n", "demo": specDemo})
	t.Logf("put (new app) -> watch event: %v", time.Since(start).Round(time.Millisecond))

	// The delivered document is a valid spec, passed through untouched.
	if _, err := spec.Parse([]byte(rec.state()["demo"])); err != nil {
		t.Fatalf("delivered spec does not parse: %v", err)
	}

	// Publishing the same content again is not a change.
	if _, err := s.Put(ctx, "demo", []byte(specDemo), ""); err != nil {
		t.Fatal(err)
	}
	// An operator edit in the console is a change, and so is malformed
	// content, which is delivered as is for the consumer to report.
	start = time.Now()
	srv.PublishConfig(t, group, "pre", "app: pre\nedited: true\n")
	rec.waitState(t, map[string]string{"pre": "app: pre\nedited: true\n", "demo": specDemo})
	t.Logf("publish (listened app) -> watch event: %v", time.Since(start).Round(time.Millisecond))
	if _, err := s.Put(ctx, "demo", []byte("{not: [valid"), ""); err != nil {
		t.Fatal(err)
	}
	rec.waitState(t, map[string]string{"pre": "app: pre\nedited: true\n", "demo": "{not: [valid"})

	// Quick successive writes: the watch may skip intermediate states but
	// must end on the last one, never going back.
	for i := range 5 {
		if _, err := s.Put(ctx, "demo", []byte(fmt.Sprintf("burst: %d\n", i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitState(t, map[string]string{"pre": "app: pre\nedited: true\n", "demo": "burst: 4\n"})

	if err := s.Delete(ctx, "pre", ""); err != nil {
		t.Fatal(err)
	}
	rec.waitState(t, map[string]string{"demo": "burst: 4\n"})

	// Deleted via the console without touching the index: also a delete.
	srv.DeleteConfig(t, group, "demo")
	rec.waitState(t, map[string]string{})

	cancel()
	select {
	case <-rec.done:
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after ctx ended")
	}
	rec.checkInvariants(t)
	for i, resp := range rec.all() {
		if resp.Err != nil {
			t.Errorf("response %d: unexpected error %v", i, resp.Err)
		}
		for _, ev := range resp.Events {
			if ev.Type == configsync.Put && ev.Entry.Version != md5Hex(string(ev.Entry.Data)) {
				t.Errorf("response %d: %s version %s is not the MD5 of its data", i, ev.Entry.App, ev.Entry.Version)
			}
		}
	}
	// "demo" went through: spec, malformed, burst..., deleted. The repeat
	// of specDemo must not appear as its own event.
	var demo []string
	for _, resp := range rec.all() {
		for _, ev := range resp.Events {
			if ev.Entry.App == "demo" {
				demo = append(demo, ev.Type.String()+":"+string(ev.Entry.Data))
			}
		}
	}
	if n := slices.Index(demo, "PUT:"+specDemo); n < 0 || slices.Index(demo[n+1:], "PUT:"+specDemo) >= 0 {
		t.Errorf("demo's spec delivered %v", demo)
	}
}

func TestWatchSurvivesRestart(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx := ctxT(t)
	for _, app := range []string{"a", "b"} {
		if _, err := s.Put(ctx, app, []byte("app: "+app+"\n"), ""); err != nil {
			t.Fatal(err)
		}
	}
	waitList(t, s, "a b")
	rec := record(ctx, s.Watch(ctx, 0))
	rec.waitState(t, map[string]string{"a": "app: a\n", "b": "app: b\n"})
	before := len(rec.all())

	srv.Kill()
	down := time.Now()
	at := rec.waitErr(t, before, configsync.ErrUnavailable)
	t.Logf("kill -> watch reports unavailable: %v", time.Since(down).Round(time.Millisecond))
	if _, err := s.Get(ctx, "a"); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("get while down: %v, want ErrUnavailable", err)
	}
	if err := s.Healthy(ctx); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("healthy while down: %v, want ErrUnavailable", err)
	}
	if _, err := s.Put(ctx, "a", []byte("app: a\nv: 2\n"), ""); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("put while down: %v, want ErrUnavailable", err)
	}

	srv.Restart()
	up := time.Now()
	rec.waitErr(t, at+1, nil)
	t.Logf("restart -> watch recovered: %v", time.Since(up).Round(time.Millisecond))
	if err := s.Healthy(ctx); err != nil {
		t.Fatalf("healthy after restart: %v", err)
	}
	// Nothing changed while the server was down: no events since.
	for i, resp := range rec.all()[before:] {
		if len(resp.Events) > 0 || resp.Reset {
			t.Fatalf("spurious response %d after restart: %+v", before+i, resp)
		}
	}
	// Changes after the restart flow again, to listened and new apps.
	if _, err := s.Put(ctx, "a", []byte("app: a\nv: 2\n"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "c", []byte("app: c\n"), ""); err != nil {
		t.Fatal(err)
	}
	rec.waitState(t, map[string]string{"a": "app: a\nv: 2\n", "b": "app: b\n", "c": "app: c\n"})
	rec.checkInvariants(t)
}

func TestWatchGuardsAgainstIndexAccidents(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx := ctxT(t)
	if _, err := s.Put(ctx, "a", []byte("app: a\n"), ""); err != nil {
		t.Fatal(err)
	}
	waitList(t, s, "a")
	rec := record(ctx, s.Watch(ctx, 0))
	rec.waitState(t, map[string]string{"a": "app: a\n"})
	before := len(rec.all())

	srv.PublishConfig(t, group, nacos.DefaultIndexDataID, "apps: [a, Not_An_App]\n")
	at := rec.waitErr(t, before, nacos.ErrBadIndex)
	// The app list in force stays: a is still followed.
	srv.PublishConfig(t, group, "a", "app: a\nv: 2\n")
	rec.waitState(t, map[string]string{"a": "app: a\nv: 2\n"})
	// Fixing the index recovers.
	srv.PublishConfig(t, group, nacos.DefaultIndexDataID, "apps: [a]\n")
	rec.waitErr(t, at+1, nil)

	// A missing index would drop every app at once, so it must stay
	// missing for a while before it counts; an empty list counts at once.
	srv.PublishConfig(t, group, "b", "app: b\n")
	srv.PublishConfig(t, group, nacos.DefaultIndexDataID, "apps: [a, b]\n")
	rec.waitState(t, map[string]string{"a": "app: a\nv: 2\n", "b": "app: b\n"})
	srv.DeleteConfig(t, group, nacos.DefaultIndexDataID)
	gone := time.Now()
	rec.waitState(t, map[string]string{})
	if d := time.Since(gone); d < 5*time.Second {
		t.Errorf("apps dropped %v after the index went missing; want the confirmation delay (6 s)", d)
	}
	srv.PublishConfig(t, group, nacos.DefaultIndexDataID, "apps: [a]\n")
	rec.waitState(t, map[string]string{"a": "app: a\nv: 2\n"})
	srv.PublishConfig(t, group, nacos.DefaultIndexDataID, "apps: []\n")
	rec.waitState(t, map[string]string{})
	rec.checkInvariants(t)
}

func TestWatchResumesAboveGivenRevision(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx := ctxT(t)
	if _, err := s.Put(ctx, "a", []byte("app: a\n"), ""); err != nil {
		t.Fatal(err)
	}
	waitList(t, s, "a")
	// A consumer that saw revision 1000 from an earlier process resumes:
	// it gets a Reset at or above 1000, and later revisions go on from
	// there.
	rec := record(ctx, s.Watch(ctx, 1000))
	rec.waitState(t, map[string]string{"a": "app: a\n"})
	first := rec.all()[0]
	if !first.Reset || first.Revision < 1000 {
		t.Fatalf("first response: reset=%v revision=%d, want a Reset at >= 1000", first.Reset, first.Revision)
	}
	e, err := s.Put(ctx, "a", []byte("app: a\nv: 2\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if e.Revision <= 1000 {
		t.Fatalf("put revision %d, want > 1000", e.Revision)
	}
	rec.waitState(t, map[string]string{"a": "app: a\nv: 2\n"})
	rec.checkInvariants(t)
}

func TestNewWithServerDown(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	cfg := testConfig(srv, group)
	srv.Kill()
	ctx := ctxT(t)
	start := time.Now()
	cfg.Logger = testLogger(t)
	s, err := nacos.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New with the server down: %v (want a source that reports unavailability)", err)
	}
	defer s.Close()
	if d := time.Since(start); d > cfg.Timeout+time.Second {
		t.Errorf("New took %v with the server down", d)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("get: %v, want ErrUnavailable", err)
	}
	rec := record(ctx, s.Watch(ctx, 0))
	rec.waitErr(t, 0, configsync.ErrUnavailable)
	srv.Restart()
	if _, err := s.Put(ctx, "a", []byte("app: a\n"), ""); err != nil {
		// The first call after the restart may race the reconnection.
		testenv.Eventually(t, within, "put after restart", func() error {
			_, err := s.Put(ctx, "a", []byte("app: a\n"), "")
			return err
		})
	}
	rec.waitState(t, map[string]string{"a": "app: a\n"})
	rec.checkInvariants(t)
}

func TestCloseEndsWatches(t *testing.T) {
	testenv.IntegrationTest(t)
	group := testGroup(t)
	srv := polaris.Start(t)
	s := newSource(t, srv, group)
	ctx := ctxT(t)
	rec := record(ctx, s.Watch(ctx, 0))
	rec.waitState(t, map[string]string{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-rec.done:
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed by Close")
	}
	// A watch on a closed source closes at once.
	if _, ok := <-s.Watch(ctx, 0); ok {
		t.Fatal("watch on a closed source delivered a response")
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("get on a closed source: %v, want ErrUnavailable", err)
	}
}

// Polaris v1.18.1's keep-alive: a Nacos gRPC connection silent for 20 s is
// dropped by a check that runs every 3 s (apiserver/nacosserver/v2/remote/
// client_conn.go, hard-wired).
const (
	polarisKeepAlive  = 20 * time.Second
	polarisEjectEvery = 3 * time.Second
)

// A Source left alone for longer than the server's connection keep-alive
// stays connected, and the server stays up: the session's canary
// connections send server checks. Before they did, Polaris v1.18.1
// ejected the silent canary and crashed unregistering it twice. No clock
// to inject: the keep-alive is the real server's. The proof is positive,
// from Polaris' own log: once the keep-alive and one check have passed
// since the Source went idle, every connection it had then has sent a
// request since, on the same connection, and none was ejected or ended.
func TestIdleSourceOutlivesServerKeepAlive(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	group := testGroup(t)
	srv := polaris.Start(t, polaris.WithNacosRequestLog())
	s := newSource(t, srv, group)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	if _, err := s.Put(ctx, "demo", []byte("app: demo\nversion: v1\n"), ""); err != nil {
		t.Fatal(err)
	}
	rec := record(ctx, s.Watch(ctx, 0))
	rec.waitState(t, map[string]string{"demo": "app: demo\nversion: v1\n"})
	before := len(rec.all())

	idle := srv.NacosConnections(t) // all the Source's: nothing else has talked to this server
	if len(idle.Open) == 0 {
		t.Fatal("Polaris' log shows no open Nacos connection")
	}
	idleSince := time.Now()
	window := polarisKeepAlive + polarisEjectEvery
	var mark polaris.NacosConnections
	marked := false
	testenv.Eventually(t, window+30*time.Second, fmt.Sprintf("each of the idle Source's %d connections active past the keep-alive", len(idle.Open)), func() error {
		if since := time.Since(idleSince); since < window {
			return fmt.Errorf("idle for %v of the %v keep-alive and check", since.Round(time.Second), window)
		}
		now := srv.NacosConnections(t)
		if !marked {
			mark, marked = now, true
		}
		if len(now.Ejected) > 0 {
			return testenv.Stop(fmt.Errorf("polaris ejected %v as silent", now.Ejected))
		}
		for _, id := range idle.Open {
			if slices.Contains(now.Ended, id) {
				return testenv.Stop(fmt.Errorf("connection %s ended while the Source was idle", id))
			}
			if now.Requests[id] <= mark.Requests[id] {
				return fmt.Errorf("no request on %s since the keep-alive passed", id)
			}
		}
		return nil
	})

	if !srv.Running() {
		t.Fatal("polaris exited while the source was idle")
	}
	for _, r := range rec.all()[before:] {
		if r.Err != nil {
			t.Fatalf("the idle source reported %v", r.Err)
		}
	}
	if err := s.Healthy(ctx); err != nil {
		t.Fatalf("Healthy after idling: %v", err)
	}
	srv.PublishConfig(t, group, "demo", "app: demo\nversion: v2\n")
	rec.waitState(t, map[string]string{"demo": "app: demo\nversion: v2\n"})
	rec.checkInvariants(t)
}
