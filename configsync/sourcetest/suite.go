package sourcetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/testsupport/testenv"
)

// Harness is what the suite needs to exercise one Source against its centre.
type Harness struct {
	// Source under test (required).
	Source configsync.Source
	// Writer is the source's own writer, nil if it is read-only (the write
	// cases are then skipped).
	Writer configsync.Writer
	// Publish writes data as app's document through the centre's own
	// client, as a console would (required).
	Publish func(t testing.TB, app string, data []byte)
	// Remove deletes app's document through the centre's own client
	// (required).
	Remove func(t testing.TB, app string)
	// Fetch reads app's document through the centre's own client; nil skips
	// the read-back of Writer.Put through the centre.
	Fetch func(t testing.TB, app string) (data []byte, ok bool)
	// Restart stops the real server and starts it again with the same data
	// and address; nil when the centre cannot be restarted in this harness.
	Restart func(t testing.TB)
	// Cut cuts the Source's client off the server (Publish and Remove must
	// still work) and returns the function that restores it; nil skips the
	// case.
	Cut func(t testing.TB) (restore func())
	// CutReported: the Source notices a cut within Eventually and reports
	// it on its watches (an Err wrapping configsync.ErrUnavailable) and, if
	// it is a configsync.HealthChecker, through Healthy.
	CutReported bool
	// Settle is how long to wait before concluding that no event is coming
	// (default 300 ms; Polaris ~3 s, Apollo ~5 s).
	Settle time.Duration
	// Eventually is the deadline for an expected event or read (default 15 s).
	Eventually time.Duration
}

func (h *Harness) defaults(t *testing.T) {
	t.Helper()
	if h.Source == nil || h.Publish == nil || h.Remove == nil {
		t.Fatal("sourcetest: Harness needs Source, Publish and Remove")
	}
	if h.Settle <= 0 {
		h.Settle = 300 * time.Millisecond
	}
	if h.Eventually <= 0 {
		h.Eventually = 15 * time.Second
	}
}

// Case is one conformance case.
type Case struct {
	Name string
	Run  func(t *testing.T, h *Harness)
}

// Cases returns the suite's cases, for harnesses that want to run a subset.
func Cases() []Case {
	return []Case{
		{"GetAndList", testGetAndList},
		{"GetMissing", testGetMissing},
		{"WatchStartsWithReset", testWatchStartsWithReset},
		{"WatchOrder", testWatchOrder},
		{"WatchResume", testWatchResume},
		{"WatchDeduplicates", testWatchDeduplicates},
		{"InvalidDocumentUntouched", testInvalidDocument},
		{"Delete", testDelete},
		{"WriterPut", testWriterPut},
		{"WriterCompareAndSwap", testWriterCAS},
		{"Restart", testRestart},
		{"Cut", testCut},
		{"Healthy", testHealthy},
		{"CloseIdempotent", testClose},
	}
}

// Run runs every case as a sub-test. newHarness is called once per case
// with the sub-test's t; it may share one server between cases (every case
// uses fresh app names) and should register the Source's Close with
// t.Cleanup.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			h := newHarness(t)
			h.defaults(t)
			c.Run(t, h)
		})
	}
}

// apps returns n fresh app names, unique to this run.
func apps(t testing.TB, n int) []string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b[:])
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("st-%s-%c", id, 'a'+i)
	}
	return out
}

func doc(app string, n int) []byte {
	return []byte(fmt.Sprintf("app: %s\nversion: v%d\n", app, n))
}

func bg(t testing.TB, h *Harness) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*h.Eventually)
	t.Cleanup(cancel)
	return ctx
}

// watch starts a watch and collects it; the returned cancel ends it.
func watch(t testing.TB, h *Harness, after int64, held *configsync.State) (*Collector, context.CancelFunc) {
	ctx, cancel := context.WithCancel(bg(t, h))
	t.Cleanup(cancel)
	return CollectFrom(t, h.Source.Watch(ctx, after), held), cancel
}

// started waits for a fresh watch's first successful response (its Reset).
func started(t testing.TB, h *Harness, c *Collector) configsync.WatchResponse {
	t.Helper()
	c.UntilResponses(t, h.Eventually, "the first listing", func(rs []configsync.WatchResponse) bool {
		return slices.ContainsFunc(rs, func(r configsync.WatchResponse) bool { return r.Err == nil })
	})
	for _, r := range c.Responses() {
		if r.Err == nil {
			return r
		}
	}
	panic("unreachable")
}

// eventuallyGet polls Get until app's document is data.
func eventuallyGet(t testing.TB, h *Harness, app string, data []byte) configsync.Entry {
	t.Helper()
	ctx := bg(t, h)
	var e configsync.Entry
	testenv.Eventually(t, h.Eventually, fmt.Sprintf("Get(%s) = %q", app, data), func() error {
		var err error
		e, err = h.Source.Get(ctx, app)
		return testenv.Check(err == nil && string(e.Data) == string(data), "Get(%s) = %q, %v", app, e.Data, err)
	})
	return e
}

// eventuallyMissing polls Get until it reports ErrNotFound.
func eventuallyMissing(t testing.TB, h *Harness, app string) {
	t.Helper()
	ctx := bg(t, h)
	testenv.Eventually(t, h.Eventually, fmt.Sprintf("Get(%s) fails with ErrNotFound", app), func() error {
		e, err := h.Source.Get(ctx, app)
		return testenv.Check(errors.Is(err, configsync.ErrNotFound), "Get(%s) = %q, %v", app, e.Data, err)
	})
}

func testGetAndList(t *testing.T, h *Harness) {
	ctx := bg(t, h)
	names := apps(t, 2)
	for i, app := range names {
		h.Publish(t, app, doc(app, i))
	}
	for i, app := range names {
		e := eventuallyGet(t, h, app, doc(app, i))
		if e.App != app {
			t.Errorf("Get(%s).App = %q", app, e.App)
		}
		if e.Version == "" {
			t.Errorf("Get(%s).Version is empty", app)
		}
	}
	entries, rev, err := h.Source.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if rev < 0 {
		t.Errorf("List revision %d < 0", rev)
	}
	for i, app := range names {
		j := slices.IndexFunc(entries, func(e configsync.Entry) bool { return e.App == app })
		if j < 0 {
			t.Errorf("List lacks %s", app)
			continue
		}
		if string(entries[j].Data) != string(doc(app, i)) || entries[j].Version == "" {
			t.Errorf("List entry %s = %q version %q, want %q", app, entries[j].Data, entries[j].Version, doc(app, i))
		}
	}
}

func testGetMissing(t *testing.T, h *Harness) {
	ctx := bg(t, h)
	app := apps(t, 1)[0]
	if _, err := h.Source.Get(ctx, app); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("Get of a missing app: err = %v, want ErrNotFound", err)
	}
	h.Publish(t, app, doc(app, 1))
	eventuallyGet(t, h, app, doc(app, 1))
	h.Remove(t, app)
	eventuallyMissing(t, h, app)
}

func testWatchStartsWithReset(t *testing.T, h *Harness) {
	names := apps(t, 2)
	a, b := names[0], names[1]
	h.Publish(t, a, doc(a, 1))
	eventuallyGet(t, h, a, doc(a, 1))
	c, _ := watch(t, h, 0, nil)
	first := started(t, h, c)
	if !first.Reset {
		t.Fatalf("first response of Watch(0) is not a Reset: %+v", first)
	}
	if !slices.ContainsFunc(first.Events, func(ev configsync.Event) bool {
		return ev.Entry.App == a && string(ev.Entry.Data) == string(doc(a, 1))
	}) {
		t.Fatalf("the first Reset does not list %s", a)
	}
	h.Publish(t, b, doc(b, 1))
	e := c.WaitData(t, b, doc(b, 1), h.Eventually)
	if e.Version == "" {
		t.Errorf("delivered %s has no Version", b)
	}
}

func testWatchOrder(t *testing.T, h *Harness) {
	app := apps(t, 1)[0]
	c, _ := watch(t, h, 0, nil)
	started(t, h, c)
	const n = 12
	for i := range n {
		h.Publish(t, app, doc(app, i))
	}
	c.WaitData(t, app, doc(app, n-1), h.Eventually)
	check := func() {
		last := -1
		for _, d := range c.Data(app) {
			i := -1
			for k := range n {
				if d == string(doc(app, k)) {
					i = k
				}
			}
			if i <= last {
				t.Fatalf("deliveries of %s out of order or repeated: %q", app, c.Data(app))
			}
			last = i
		}
	}
	check()
	// Nothing after the final state: wait a while and look again.
	settle(h)
	check()
	if e, _ := c.Get(app); string(e.Data) != string(doc(app, n-1)) {
		t.Fatalf("final state of %s = %q, want the last publish", app, e.Data)
	}
}

// settle waits for Settle: the time after which a centre that was going to
// deliver something would have. Used only to assert that nothing arrives.
func settle(h *Harness) { time.Sleep(h.Settle) }

func testWatchResume(t *testing.T, h *Harness) {
	names := apps(t, 3)
	a, b, gone := names[0], names[1], names[2]
	c1, cancel1 := watch(t, h, 0, nil)
	started(t, h, c1)
	h.Publish(t, a, doc(a, 1))
	h.Publish(t, gone, doc(gone, 1))
	c1.WaitData(t, a, doc(a, 1), h.Eventually)
	c1.WaitData(t, gone, doc(gone, 1), h.Eventually)
	cancel1()
	c1.WaitClosed(t, h.Eventually)
	held := c1.State()

	// Changes while nobody watches.
	h.Publish(t, a, doc(a, 2))
	h.Publish(t, b, doc(b, 1))
	h.Remove(t, gone)

	c2, _ := watch(t, h, held.Revision(), held)
	c2.WaitData(t, a, doc(a, 2), h.Eventually)
	c2.WaitData(t, b, doc(b, 1), h.Eventually)
	c2.WaitGone(t, gone, h.Eventually)
	if got := c2.Data(a); !slices.Equal(got, []string{string(doc(a, 2))}) {
		t.Fatalf("resumed watch delivered %s as %q, want only the change made while not watching", a, got)
	}
}

func testWatchDeduplicates(t *testing.T, h *Harness) {
	names := apps(t, 2)
	a, b := names[0], names[1]
	c, _ := watch(t, h, 0, nil)
	started(t, h, c)
	h.Publish(t, a, doc(a, 1))
	h.Publish(t, b, doc(b, 1))
	c.WaitData(t, a, doc(a, 1), h.Eventually)
	c.WaitData(t, b, doc(b, 1), h.Eventually)
	h.Publish(t, a, doc(a, 1)) // identical content
	h.Publish(t, a, doc(a, 2))
	c.WaitData(t, a, doc(a, 2), h.Eventually)
	if got, want := c.Data(a), []string{string(doc(a, 1)), string(doc(a, 2))}; !slices.Equal(got, want) {
		t.Fatalf("deliveries of %s = %q, want %q (identical content once)", a, got, want)
	}
	// Republishing identical content alone: nothing arrives.
	h.Publish(t, b, doc(b, 1))
	settle(h)
	if got := c.Data(b); len(got) != 1 {
		t.Fatalf("deliveries of %s = %q, want one", b, got)
	}
}

func testInvalidDocument(t *testing.T, h *Harness) {
	app := apps(t, 1)[0]
	bad := []byte("app: [unclosed\n  replicas: {{ not: yaml\n\t- nor json }\n")
	c, _ := watch(t, h, 0, nil)
	started(t, h, c)
	h.Publish(t, app, bad)
	c.WaitData(t, app, bad, h.Eventually)
	eventuallyGet(t, h, app, bad)
}

func testDelete(t *testing.T, h *Harness) {
	ctx := bg(t, h)
	names := apps(t, 2)
	a, b := names[0], names[1]
	c, _ := watch(t, h, 0, nil)
	started(t, h, c)
	h.Publish(t, a, doc(a, 1))
	h.Publish(t, b, doc(b, 1))
	c.WaitData(t, a, doc(a, 1), h.Eventually)
	c.WaitData(t, b, doc(b, 1), h.Eventually)
	h.Remove(t, a)
	c.WaitGone(t, a, h.Eventually)
	if _, ok := c.Get(b); !ok {
		t.Fatalf("removing %s also removed %s", a, b)
	}
	eventuallyMissing(t, h, a)
	entries, _, err := h.Source.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if slices.ContainsFunc(entries, func(e configsync.Entry) bool { return e.App == a }) {
		t.Fatalf("List still has %s after its removal", a)
	}
	// A fresh watch's listing does not have it either.
	c2, _ := watch(t, h, 0, nil)
	first := started(t, h, c2)
	if slices.ContainsFunc(first.Events, func(ev configsync.Event) bool { return ev.Entry.App == a }) {
		t.Fatalf("a new watch's Reset lists removed %s", a)
	}
}

func needWriter(t *testing.T, h *Harness) configsync.Writer {
	t.Helper()
	if h.Writer == nil {
		t.Skip("read-only source: no Writer")
	}
	return h.Writer
}

func testWriterPut(t *testing.T, h *Harness) {
	w := needWriter(t, h)
	ctx := bg(t, h)
	app := apps(t, 1)[0]
	c, _ := watch(t, h, 0, nil)
	started(t, h, c)
	e, err := w.Put(ctx, app, doc(app, 1), "")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if e.App != app || string(e.Data) != string(doc(app, 1)) || e.Version == "" {
		t.Fatalf("Put returned %+v", e)
	}
	got := eventuallyGet(t, h, app, doc(app, 1))
	if got.Version != e.Version {
		t.Errorf("Get version %q, Put returned %q", got.Version, e.Version)
	}
	if h.Fetch != nil {
		if data, ok := h.Fetch(t, app); !ok || string(data) != string(doc(app, 1)) {
			t.Errorf("centre holds %q (present %v), want what Put wrote", data, ok)
		}
	}
	c.WaitData(t, app, doc(app, 1), h.Eventually)
	if _, err := w.Put(ctx, app, doc(app, 2), ""); err != nil {
		t.Fatalf("unconditional Put over an existing document: %v", err)
	}
	c.WaitData(t, app, doc(app, 2), h.Eventually)
}

func testWriterCAS(t *testing.T, h *Harness) {
	w := needWriter(t, h)
	ctx := bg(t, h)
	app := apps(t, 1)[0]
	conflict := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, configsync.ErrConflict) {
			t.Fatalf("%s: err = %v, want ErrConflict", what, err)
		}
	}
	e1, err := w.Put(ctx, app, doc(app, 1), configsync.Absent)
	if err != nil {
		t.Fatalf("Put Absent of a new app: %v", err)
	}
	_, err = w.Put(ctx, app, doc(app, 9), configsync.Absent)
	conflict("Put Absent over an existing document", err)
	e2, err := w.Put(ctx, app, doc(app, 2), e1.Version)
	if err != nil {
		t.Fatalf("Put with the current version: %v", err)
	}
	if e2.Version == e1.Version {
		t.Fatalf("Put did not change the version (%q)", e2.Version)
	}
	_, err = w.Put(ctx, app, doc(app, 9), e1.Version)
	conflict("Put with a stale version", err)
	eventuallyGet(t, h, app, doc(app, 2)) // the lost writes wrote nothing

	// A console write makes the writer's version stale.
	h.Publish(t, app, doc(app, 3))
	cur := eventuallyGet(t, h, app, doc(app, 3))
	_, err = w.Put(ctx, app, doc(app, 9), e2.Version)
	conflict("Put after a console write", err)
	conflict("Delete with a stale version", w.Delete(ctx, app, e2.Version))
	conflict("Delete Absent of an existing document", w.Delete(ctx, app, configsync.Absent))
	eventuallyGet(t, h, app, doc(app, 3))
	if err := w.Delete(ctx, app, cur.Version); err != nil {
		t.Fatalf("Delete with the current version: %v", err)
	}
	eventuallyMissing(t, h, app)
	if err := w.Delete(ctx, app, ""); err != nil {
		t.Errorf("Delete of a missing document: %v", err)
	}
	if err := w.Delete(ctx, app, cur.Version); err != nil {
		t.Errorf("Delete of a missing document with a version: %v", err)
	}
	if _, err := w.Put(ctx, app, doc(app, 4), configsync.Absent); err != nil {
		t.Fatalf("Put Absent after a delete: %v", err)
	}
	eventuallyGet(t, h, app, doc(app, 4))
}

func testRestart(t *testing.T, h *Harness) {
	if h.Restart == nil {
		t.Skip("harness cannot restart the centre")
	}
	names := apps(t, 4)
	changed, same, removed, added := names[0], names[1], names[2], names[3]
	c, _ := watch(t, h, 0, nil)
	started(t, h, c)
	for _, app := range []string{changed, same, removed} {
		h.Publish(t, app, doc(app, 1))
	}
	for _, app := range []string{changed, same, removed} {
		c.WaitData(t, app, doc(app, 1), h.Eventually)
	}

	h.Restart(t)
	h.Publish(t, changed, doc(changed, 2))
	h.Remove(t, removed)
	h.Publish(t, added, doc(added, 1))

	c.WaitData(t, changed, doc(changed, 2), h.Eventually)
	c.WaitGone(t, removed, h.Eventually)
	c.WaitData(t, added, doc(added, 1), h.Eventually)
	c.WaitHealthy(t, h.Eventually)
	settle(h)
	if got := c.Data(same); len(got) != 1 {
		t.Fatalf("unchanged %s delivered %d times across the restart: %q", same, len(got), got)
	}
	if got := c.Data(changed); len(got) != 2 {
		t.Fatalf("%s delivered as %q, want its two versions once each", changed, got)
	}
	for _, err := range c.Errs() {
		t.Logf("reported while restarting: %v", err)
	}
	eventuallyGet(t, h, same, doc(same, 1))
}

func testCut(t *testing.T, h *Harness) {
	if h.Cut == nil {
		t.Skip("harness cannot cut the client off")
	}
	names := apps(t, 2)
	changed, same := names[0], names[1]
	c, _ := watch(t, h, 0, nil)
	started(t, h, c)
	h.Publish(t, changed, doc(changed, 1))
	h.Publish(t, same, doc(same, 1))
	c.WaitData(t, changed, doc(changed, 1), h.Eventually)
	c.WaitData(t, same, doc(same, 1), h.Eventually)

	restore := h.Cut(t)
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	h.Publish(t, changed, doc(changed, 2))
	if h.CutReported {
		err := c.WaitErr(t, h.Eventually)
		if !errors.Is(err, configsync.ErrUnavailable) {
			t.Fatalf("cut reported as %v, want ErrUnavailable", err)
		}
		if hc, ok := h.Source.(configsync.HealthChecker); ok {
			if err := hc.Healthy(bg(t, h)); !errors.Is(err, configsync.ErrUnavailable) {
				t.Errorf("Healthy while cut off = %v, want ErrUnavailable", err)
			}
		}
	}
	// Reads while cut off either fail as unavailable or come from a cache.
	ctx, cancel := context.WithTimeout(bg(t, h), h.Eventually)
	if _, err := h.Source.Get(ctx, same); err != nil && !errors.Is(err, configsync.ErrUnavailable) && ctx.Err() == nil {
		t.Errorf("Get while cut off: err = %v, want nil or ErrUnavailable", err)
	}
	cancel()
	restore()
	restored = true

	c.WaitData(t, changed, doc(changed, 2), h.Eventually)
	c.WaitHealthy(t, h.Eventually)
	settle(h)
	if got := c.Data(same); len(got) != 1 {
		t.Fatalf("unchanged %s delivered %d times across the cut: %q", same, len(got), got)
	}
	if got := c.Data(changed); len(got) != 2 {
		t.Fatalf("%s delivered as %q, want its two versions once each", changed, got)
	}
	eventuallyGet(t, h, changed, doc(changed, 2))
}

func testHealthy(t *testing.T, h *Harness) {
	hc, ok := h.Source.(configsync.HealthChecker)
	if !ok {
		t.Skip("source is not a HealthChecker")
	}
	if err := hc.Healthy(bg(t, h)); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
}

func testClose(t *testing.T, h *Harness) {
	if h.Source.Name() == "" {
		t.Error("Name is empty")
	}
	if err := h.Source.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Source.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
