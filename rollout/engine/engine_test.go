package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recorder is a fake backend and router backed by in-memory state: Apply
// creates or removes instances (new ones start not ready), settle makes
// them ready, and every call is recorded so tests can assert the sequence.
type recorder struct {
	mu        sync.Mutex
	instances map[string][]adapters.Instance // app -> instances
	split     map[string]traffic.Split
	calls     []string
	steps     []adapters.Step // the step of every Apply that changed something
	starts    map[string]int  // instance id -> times started
	failApply error
	hang      map[string]bool
}

func newRecorder() *recorder {
	return &recorder{instances: map[string][]adapters.Instance{}, split: map[string]traffic.Split{},
		starts: map[string]int{}, hang: map[string]bool{}}
}

var (
	_ adapters.Backend       = (*recorder)(nil)
	_ adapters.TrafficRouter = (*recorder)(nil)
)

func (r *recorder) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Instance(nil), r.instances[app]...), nil
}

func (r *recorder) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step adapters.Step) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failApply != nil {
		return r.failApply
	}
	var keys []string
	for v := range want {
		keys = append(keys, v)
	}
	sort.Strings(keys)
	byVersion := map[string][]adapters.Instance{}
	for _, in := range r.instances[rel.App] {
		byVersion[in.Version] = append(byVersion[in.Version], in)
	}
	var out []adapters.Instance
	changed := false
	for v, list := range byVersion {
		if _, ok := want[v]; !ok {
			changed = true // absent versions go to zero
			continue
		}
		_ = list
	}
	for _, v := range keys {
		have := byVersion[v]
		n := want[v]
		for len(have) > n {
			have = have[:len(have)-1]
			changed = true
		}
		for len(have) < n {
			id := fmt.Sprintf("%s-%s-%d", rel.App, v, len(have))
			r.starts[id]++
			have = append(have, adapters.Instance{ID: id, Version: v})
			changed = true
		}
		out = append(out, have...)
	}
	r.instances[rel.App] = out
	if changed {
		r.calls = append(r.calls, "apply "+fmtReplicas(want))
		r.steps = append(r.steps, step)
	}
	return nil
}

func (r *recorder) settle(app string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.instances[app] {
		if !r.hang[r.instances[app][i].Version] {
			r.instances[app][i].Ready = true
		}
	}
}

func (r *recorder) Weights(ctx context.Context, app string) (traffic.Split, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.split[app], nil
}

func (r *recorder) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := traffic.ValidateSplit(s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.split[rel.App] = s
	var parts []string
	for _, w := range s.Weights {
		parts = append(parts, fmt.Sprintf("%s:%d", w.Version, w.Weight))
	}
	r.calls = append(r.calls, "route "+strings.Join(parts, ","))
	return nil
}

func (r *recorder) Backend(*spec.Release) (adapters.Backend, error)      { return r, nil }
func (r *recorder) Router(*spec.Release) (adapters.TrafficRouter, error) { return r, nil }

func (r *recorder) takeCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func fmtReplicas(m traffic.Replicas) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

const demoSpec = `app: demo
version: %s
replicas: 2
strategy:
  steps: [{setWeight: 50}, {pause: {duration: 10s}}, {setWeight: 100}]
  scaleDownDelay: 5s
backend: {type: process, process: {command: [demoapp]}}
`

type harness struct {
	t     *testing.T
	src   *memory.Source
	store *MemoryStore
	rec   *recorder
	clock *fakeClock
	eng   *Engine
	ctx   context.Context
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, src: memory.New(), store: NewMemoryStore(), rec: newRecorder(),
		clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, ctx: ctx}
	h.eng = h.newEngine()
	return h
}

func (h *harness) newEngine() *Engine {
	e := New(Config{Source: h.src, Store: h.store, Resolver: h.rec, Clock: h.clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go e.watch(h.ctx)
	select {
	case <-e.Synced():
	case <-time.After(5 * time.Second):
		h.t.Fatal("engine never synced with the source")
	}
	return e
}

// put writes a document and waits until the engine has seen it.
func (h *harness) put(app, doc string) {
	h.t.Helper()
	en := h.src.Set(app, []byte(doc))
	h.waitDoc(app, en.Revision)
}

func (h *harness) waitDoc(app string, rev int64) {
	h.t.Helper()
	testenv.Eventually(h.t, 5*time.Second, fmt.Sprintf("the engine sees revision %d of %s", rev, app), func() error {
		h.eng.mu.Lock()
		got, ok := h.eng.docs.Get(app)
		h.eng.mu.Unlock()
		return testenv.Check((rev == 0 && !ok) || (rev > 0 && ok && got.Revision >= rev), "it has revision %d (present %v)", got.Revision, ok)
	})
}

// converge syncs and settles until the status stops changing.
func (h *harness) converge(app string) View {
	h.t.Helper()
	var last string
	for i := 0; i < 50; i++ {
		if _, err := h.eng.Sync(h.ctx, app); err != nil {
			h.t.Fatalf("sync: %v", err)
		}
		h.rec.settle(app)
		v, err := h.eng.App(h.ctx, app)
		if err != nil {
			h.t.Fatal(err)
		}
		cur := fmt.Sprintf("%+v %v %v", v.Status.Status, h.rec.instances[app], h.rec.split[app])
		if cur == last {
			return View(v)
		}
		last = cur
	}
	h.t.Fatal("no convergence")
	return View{}
}

type View AppView

func TestEngineCanaryWithInjectedClock(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	v := h.converge("demo")
	if v.Status.Phase != rollout.Healthy || v.Status.StableVersion != "v1" {
		t.Fatalf("after first release: %+v", v.Status.Status)
	}
	if got := h.rec.takeCalls(); strings.Join(got, "; ") != "apply v1:2; route v1:100" {
		t.Fatalf("first release calls = %q", got)
	}

	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	v = h.converge("demo")
	if v.Status.Step != 1 || v.Status.Weights["v2"] != 50 {
		t.Fatalf("want step 1 at 50%%, got %+v", v.Status.Status)
	}
	if got := h.rec.takeCalls(); strings.Join(got, "; ") != "apply v1:2,v2:1; route v2:50,v1:50" {
		t.Fatalf("canary calls = %q", got)
	}
	// the step is passed to Apply as an argument: the first release has
	// none, the canary's scale-up is step 0 (setWeight 50)
	h.rec.mu.Lock()
	steps := append([]adapters.Step(nil), h.rec.steps...)
	h.rec.mu.Unlock()
	if len(steps) != 2 || steps[0].Index != -1 || steps[1].Index != 0 || !strings.Contains(steps[1].Reason, "canary v2 step 1/") {
		t.Fatalf("steps given to Apply = %+v, want NoStep then index 0 with the planner's reason", steps)
	}
	// the 10s pause holds until the injected clock passes it
	h.clock.Add(9 * time.Second)
	v = h.converge("demo")
	if v.Status.Step != 1 || len(h.rec.takeCalls()) != 0 {
		t.Fatalf("pause ended early: %+v", v.Status.Status)
	}
	h.clock.Add(time.Second)
	v = h.converge("demo")
	if v.Status.Phase != rollout.Healthy || v.Status.StableVersion != "v2" || v.Status.PreviousVersion != "v1" {
		t.Fatalf("after pause: %+v", v.Status.Status)
	}
	if got := h.rec.takeCalls(); strings.Join(got, "; ") != "apply v1:2,v2:2; route v2:100" {
		t.Fatalf("promotion calls = %q", got)
	}
	h.clock.Add(5 * time.Second)
	h.converge("demo")
	if got := h.rec.takeCalls(); strings.Join(got, "; ") != "apply v1:0,v2:2" {
		t.Fatalf("scale-down calls = %q", got)
	}
	for id, n := range h.rec.starts {
		if n != 1 {
			t.Errorf("instance %s started %d times", id, n)
		}
	}
}

func TestEngineKeepsLastGoodSpecOnBadInput(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.rec.takeCalls()
	for _, bad := range []struct{ doc, field string }{
		{strings.Replace(fmt.Sprintf(demoSpec, "v2"), "setWeight: 50", "setWeight: 150", 1), "strategy.steps[0].setWeight"},
		{fmt.Sprintf(demoSpec, "v2;rm -rf /"), "version"},
		{fmt.Sprintf(demoSpec, "v2") + "colour: blue\n", "colour"},
		{"app: [unclosed", ""},
		{fmt.Sprintf(strings.Replace(demoSpec, "app: demo", "app: other", 1), "v2"), "app"},
	} {
		h.put("demo", bad.doc)
		v := h.converge("demo")
		if v.Status.SpecError == nil || v.Status.SpecError.Field != bad.field {
			t.Fatalf("doc %q: spec error = %+v, want field %q", bad.doc, v.Status.SpecError, bad.field)
		}
		if v.Spec.Version != "v1" || v.Status.StableVersion != "v1" || v.Status.Phase != rollout.Healthy {
			t.Fatalf("last good spec not kept: spec %s status %+v", v.Spec.Version, v.Status.Status)
		}
		if calls := h.rec.takeCalls(); len(calls) != 0 {
			t.Fatalf("bad spec applied something: %v", calls)
		}
	}
	// and the event stream names the field
	var found bool
	for _, m := range h.eng.Broker().Recent("demo") {
		if m.Event != nil && m.Event.Reason == "InvalidSpec" && strings.Contains(m.Event.Message, "setWeight: 150 is over 100") {
			found = true
		}
	}
	if !found {
		t.Fatal("no InvalidSpec event naming strategy.steps[0].setWeight")
	}
	// a good document clears the error
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	if v := h.converge("demo"); v.Status.SpecError != nil {
		t.Fatalf("error not cleared: %+v", v.Status.SpecError)
	}
}

// A new engine on the same store and backend (graylane restarted) carries
// on from the persisted step: nothing is started twice, nothing skipped.
func TestEngineRestartResumesFromPersistedStep(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	v := h.converge("demo")
	if v.Status.Step != 1 {
		t.Fatalf("setup: step %d", v.Status.Step)
	}
	h.rec.takeCalls()
	h.eng = h.newEngine() // the old one is simply abandoned, like a SIGKILL
	h.clock.Add(3 * time.Second)
	v = h.converge("demo")
	if v.Status.Step != 1 || len(h.rec.takeCalls()) != 0 {
		t.Fatalf("restart moved the release: %+v", v.Status.Status)
	}
	h.clock.Add(7 * time.Second)
	v = h.converge("demo")
	if v.Status.StableVersion != "v2" {
		t.Fatalf("did not finish after restart: %+v", v.Status.Status)
	}
	for id, n := range h.rec.starts {
		if n != 1 {
			t.Errorf("instance %s started %d times", id, n)
		}
	}
}

// After a restart the backend may report instances it adopted before it
// has judged their health (adapters.MetaHealthPending): their readiness is
// unknown, not false. The engine must not decide on that: a canary with no
// ready instance gets no traffic, so planning then would move the canary's
// weight back to stable and forth again a moment later. It holds the app
// as persisted until the backend has judged them, and then carries on (or,
// if they turned out unhealthy, reacts as it would to any failing canary).
func TestEngineHoldsWhileAdoptedInstancesHealthIsPending(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	v := h.converge("demo")
	if v.Status.Step != 1 || v.Status.Weights["v2"] != 50 {
		t.Fatalf("setup: %+v", v.Status.Status)
	}
	h.rec.takeCalls()
	setPending := func(version string, pending bool) {
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		for i, in := range h.rec.instances["demo"] {
			if in.Version != version {
				continue
			}
			in.Meta = map[string]string{}
			if pending {
				in.Meta[adapters.MetaHealthPending] = "adopted: first health check pending"
				in.Ready = false
			}
			h.rec.instances["demo"][i] = in
		}
	}
	sync := func() View {
		t.Helper()
		if _, err := h.eng.Sync(h.ctx, "demo"); err != nil {
			t.Fatal(err)
		}
		v, err := h.eng.App(h.ctx, "demo")
		if err != nil {
			t.Fatal(err)
		}
		return View(v)
	}

	h.eng = h.newEngine() // graylane restarted
	setPending("v2", true)
	for range 3 {
		v = sync()
		if v.Status.Step != 1 || v.Status.Weights["v2"] != 50 || len(h.rec.takeCalls()) != 0 {
			t.Fatalf("the engine decided while the canary's health was pending: %+v", v.Status.Status)
		}
		h.clock.Add(2 * time.Second)
	}
	if got := readyOf(v.Status.Instances, "v2"); got != 0 || len(v.Status.Instances) != 3 {
		t.Fatalf("the held app shows %d instances (%d v2 ready); want what runs: 3, none ready", len(v.Status.Instances), got)
	}
	// judged healthy: the release carries on from where it was
	setPending("v2", false)
	h.rec.settle("demo")
	v = h.converge("demo")
	if v.Status.Step != 1 || v.Status.Weights["v2"] != 50 || len(h.rec.takeCalls()) != 0 {
		t.Fatalf("the release moved once the health was judged: %+v", v.Status.Status)
	}
	h.clock.Add(10 * time.Second)
	v = h.converge("demo")
	if v.Status.StableVersion != "v2" {
		t.Fatalf("did not carry on once the health was judged: %+v", v.Status.Status)
	}
	for id, n := range h.rec.starts {
		if n != 1 {
			t.Errorf("instance %s started %d times", id, n)
		}
	}
}

// A backend whose instances stay pending for ever cannot freeze an app:
// the engine holds at most healthHoldLimit, then plans on what it sees.
func TestEngineHealthHoldIsBounded(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	h.converge("demo")
	h.rec.takeCalls()
	h.rec.mu.Lock()
	for i, in := range h.rec.instances["demo"] {
		if in.Version == "v2" {
			in.Ready, in.Meta = false, map[string]string{adapters.MetaHealthPending: "stuck"}
			h.rec.instances["demo"][i] = in
		}
	}
	h.rec.mu.Unlock()
	if _, err := h.eng.Sync(h.ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if calls := h.rec.takeCalls(); len(calls) != 0 {
		t.Fatalf("decided at once: %v", calls)
	}
	h.clock.Add(minHealthHold - time.Second)
	if _, err := h.eng.Sync(h.ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if calls := h.rec.takeCalls(); len(calls) != 0 {
		t.Fatalf("decided before the bound: %v", calls)
	}
	h.clock.Add(time.Second) // demoSpec's health is the default: the bound is minHealthHold
	if _, err := h.eng.Sync(h.ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	// no ready canary instance: its weight goes back to stable
	if calls := h.rec.takeCalls(); !slices.Contains(calls, "route v1:100") {
		t.Fatalf("after the bound, calls = %q; want the canary's weight moved to stable", calls)
	}
}

// The hold's bound grows with an app's health settings: a backend judges
// an adopted instance after its failure threshold of checks, each up to
// interval + timeout apart.
func TestHealthHoldLimit(t *testing.T) {
	slow := &spec.Release{Health: spec.Health{Interval: &spec.Duration{Duration: 10 * time.Second}, Timeout: &spec.Duration{Duration: 5 * time.Second}}}
	for _, c := range []struct {
		rel  *spec.Release
		want time.Duration
	}{
		{nil, minHealthHold},
		{&spec.Release{}, minHealthHold},
		{slow, 150 * time.Second},
	} {
		if got := healthHoldLimit(c.rel); got != c.want {
			t.Errorf("healthHoldLimit(%+v) = %v, want %v", c.rel, got, c.want)
		}
	}
}

func readyOf(ins []adapters.Instance, version string) int {
	n := 0
	for _, in := range ins {
		if in.Version == version && in.Ready {
			n++
		}
	}
	return n
}

func TestEngineCASConflictIsRetriedNotLost(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	rec, rev, _ := h.store.Load(h.ctx, "demo")
	// another writer saves in between our load and save
	conflicting := &racingStore{MemoryStore: h.store, before: func() {
		rec.Status.Message = "someone else"
		if _, err := h.store.Save(h.ctx, "demo", rec, rev); err != nil {
			t.Fatal(err)
		}
	}}
	h.eng.cfg.Store = conflicting
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	_, err := h.eng.Sync(h.ctx, "demo")
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Sync error = %v, want ErrConflict", err)
	}
	h.eng.cfg.Store = h.store
	v := h.converge("demo")
	if v.Status.CanaryVersion != "v2" {
		t.Fatalf("after retry: %+v", v.Status.Status)
	}
}

type racingStore struct {
	*MemoryStore
	before func()
	done   bool
}

func (r *racingStore) Save(ctx context.Context, app string, rec Record, rev int64) (int64, error) {
	if !r.done {
		r.done = true
		r.before()
	}
	return r.MemoryStore.Save(ctx, app, rec, rev)
}

func TestEngineCommandsThroughTheQueue(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(strings.Replace(demoSpec, "{pause: {duration: 10s}}", "{pause: {}}", 1), "v1"))
	h.converge("demo")
	h.put("demo", fmt.Sprintf(strings.Replace(demoSpec, "{pause: {duration: 10s}}", "{pause: {}}", 1), "v2"))
	v := h.converge("demo")
	if v.Status.Phase != rollout.Paused {
		t.Fatalf("want Paused at the indefinite pause, got %+v", v.Status.Status)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	go h.eng.Run(ctx)
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	res, err := h.eng.Command(cctx, "demo", rollout.CmdPromote)
	if err != nil || res.Error != "" {
		t.Fatalf("promote: %v %+v", err, res)
	}
	res, err = h.eng.Command(cctx, "demo", rollout.CmdPause)
	if err != nil || res.Error != "" {
		t.Fatalf("pause: %v %+v", err, res)
	}
	res, err = h.eng.Command(cctx, "demo", rollout.CmdPause)
	if err != nil || res.Error != "already paused" {
		t.Fatalf("second pause: %v %+v, want 'already paused'", err, res)
	}
	if _, err := h.eng.Command(cctx, "nope", rollout.CmdPause); !errors.Is(err, ErrNotFound) {
		t.Fatalf("command for unknown app: %v", err)
	}
}

func TestEngineHoldsWhileSourceIsDown(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	v := h.converge("demo")
	if v.Status.Step != 1 {
		t.Fatalf("setup: %+v", v.Status.Status)
	}
	h.rec.takeCalls()
	h.src.SetAvailable(false)
	testenv.Eventually(t, 5*time.Second, "the engine notices the source went away", func() error {
		return testenv.Check(h.eng.SourceError() != nil, "no source error")
	})
	h.clock.Add(time.Hour) // far past the pause and the progress deadline
	v = h.converge("demo")
	if v.Status.Step != 1 || v.Status.Phase != rollout.Progressing || len(h.rec.takeCalls()) != 0 || v.Status.Source.Ready {
		t.Fatalf("release moved while the source was down: %+v calls=%v", v.Status, h.rec.calls)
	}
	h.src.SetAvailable(true)
	testenv.Eventually(t, 5*time.Second, "the engine notices the source came back", func() error {
		return h.eng.SourceError()
	})
	v = h.converge("demo")
	if v.Status.StableVersion != "v2" || v.Status.Phase != rollout.Healthy {
		t.Fatalf("did not continue after the outage: %+v", v.Status.Status)
	}
}

func TestEngineDeletesAppWhenSpecRemoved(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.src.Remove("demo")
	h.waitDoc("demo", 0)
	for i := 0; i < 5; i++ {
		d, err := h.eng.Sync(h.ctx, "demo")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pass %d: next %v, %d instances left", i, d, len(h.rec.instances["demo"]))
	}
	if n := len(h.rec.instances["demo"]); n != 0 {
		t.Fatalf("%d instances left", n)
	}
	if _, err := h.eng.App(h.ctx, "demo"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("app still known: %v", err)
	}
}

// A backend that reports the canary version stalled (adapters.MetaStalled,
// as the kubernetes backend does for a Deployment's
// ProgressDeadlineExceeded) degrades the release without graylane's clock
// reaching the progress deadline.
func TestEngineBackendStallDegradesWithoutWaiting(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.rec.hang["v2"] = true
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	v := h.converge("demo")
	if v.Status.Phase != rollout.Progressing || v.Status.CanaryVersion != "v2" {
		t.Fatalf("before the stall: %+v", v.Status.Status)
	}
	h.rec.mu.Lock()
	for i, in := range h.rec.instances["demo"] {
		if in.Version == "v2" {
			h.rec.instances["demo"][i].Meta = map[string]string{adapters.MetaStalled: "Deployment demo-v2: ProgressDeadlineExceeded"}
		}
	}
	h.rec.mu.Unlock()
	v = h.converge("demo") // the clock has not moved
	if v.Status.Phase != rollout.Degraded || !strings.Contains(v.Status.Message, "progress deadline exceeded") {
		t.Fatalf("after the stall: %+v", v.Status.Status)
	}
	found := false
	var seen []string
	for _, m := range h.eng.Broker().Recent("demo") {
		if m.Event == nil {
			continue
		}
		seen = append(seen, m.Event.Reason+": "+m.Event.Message)
		if m.Event.Reason == "ProgressDeadlineExceeded" && strings.Contains(m.Event.Message, "demo-v2: ProgressDeadlineExceeded") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no ProgressDeadlineExceeded event naming the backend's reason: %q", seen)
	}
}

// An app whose backend keeps failing to apply is Degraded with the error,
// not Healthy, even though what runs is what it wants; once an apply works
// again the engine plans again at once (not at the next resync) and the
// app is Healthy.
func TestEngineApplyFailureIsDegradedUntilAnApplyWorks(t *testing.T) {
	h := newHarness(t)
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	if v := h.converge("demo"); v.Status.Phase != rollout.Healthy {
		t.Fatalf("setup: %+v", v.Status.Status)
	}
	h.rec.mu.Lock()
	h.rec.failApply = errors.New("services is forbidden")
	h.rec.mu.Unlock()
	for i := 0; i < 2; i++ { // the first pass records the error, the second plans with it
		if _, err := h.eng.Sync(h.ctx, "demo"); err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Fatalf("sync %d with a failing backend: err = %v", i, err)
		}
	}
	v, err := h.eng.App(h.ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status.Phase != rollout.Degraded || !strings.Contains(v.Status.Message, "forbidden") || !strings.Contains(v.Status.LastError, "forbidden") {
		t.Fatalf("with applies failing: phase %s message %q lastError %q", v.Status.Phase, v.Status.Message, v.Status.LastError)
	}
	h.rec.mu.Lock()
	h.rec.failApply = nil
	h.rec.mu.Unlock()
	next, err := h.eng.Sync(h.ctx, "demo")
	if err != nil {
		t.Fatalf("sync once the backend works: %v", err)
	}
	if next <= 0 || next > time.Second { // 0 would mean: at the next resync
		t.Fatalf("after the first working apply the engine looks again in %s, want at once", next)
	}
	if _, err := h.eng.Sync(h.ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	v, err = h.eng.App(h.ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status.Phase != rollout.Healthy || v.Status.LastError != "" {
		t.Fatalf("after an apply worked: phase %s message %q lastError %q", v.Status.Phase, v.Status.Message, v.Status.LastError)
	}
}
