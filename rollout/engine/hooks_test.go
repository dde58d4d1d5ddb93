package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/graylane/graylane/rollout"
)

// fakeHooks is a HookRunner whose outcomes the test decides; it records
// the calls the engine makes.
type fakeHooks struct {
	mu       sync.Mutex
	state    map[string]string // kind -> state for the current identity
	calls    []string
	released []string
}

func (f *fakeHooks) Gate(_ context.Context, app string, ref *SpecRef) (*rollout.HookGate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := &rollout.HookGate{Identity: ref.Identity, Hooks: map[string]rollout.HookState{}}
	if len(ref.Spec.Hooks.PreRelease) > 0 {
		g.Hooks[rollout.HookPreRelease] = rollout.HookState{State: f.state[ref.Identity+"/"+rollout.HookPreRelease], Message: "migrating"}
	}
	return g, nil
}

func (f *fakeHooks) Start(_ context.Context, app string, ref *SpecRef, kinds []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range kinds {
		f.calls = append(f.calls, "start "+ref.Identity+" "+k)
		f.state[ref.Identity+"/"+k] = rollout.HookRunning
	}
	return nil
}

func (f *fakeHooks) Retry(_ context.Context, app string, ref *SpecRef, kinds []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range kinds {
		f.calls = append(f.calls, "retry "+ref.Identity+" "+k)
		delete(f.state, ref.Identity+"/"+k)
	}
	return nil
}

func (f *fakeHooks) Released(_ context.Context, app string, ref *SpecRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, ref.Identity)
	return nil
}

func (f *fakeHooks) set(identity, kind, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[identity+"/"+kind] = state
}

type freezer struct {
	mu     sync.Mutex
	reason string
}

func (z *freezer) Frozen() string { z.mu.Lock(); defer z.mu.Unlock(); return z.reason }

const hookedSpec = `app: demo
version: %s
replicas: 2
strategy: {steps: [{setWeight: 50}, {setWeight: 100}]}
backend: {type: registry}
hooks:
  preRelease: [{name: migrate, command: [./migrate]}]
  postRelease: [{name: tell, http: {url: "http://example.invalid/released"}}]
`

// The engine starts a pre-release hook the planner asks for, applies no
// instance of the version until the runner says it passed, and asks for
// post-release hooks once the release is Healthy.
func TestEngineRunsReleaseHooks(t *testing.T) {
	h := newHarness(t)
	hooks := &fakeHooks{state: map[string]string{}}
	h.eng = New(Config{Source: h.src, Store: h.store, Resolver: h.rec, Clock: h.clock, Hooks: hooks,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go h.eng.watch(h.ctx)
	<-h.eng.Synced()
	hooks.set("v1", rollout.HookPreRelease, rollout.HookPassed)
	h.put("demo", fmt.Sprintf(hookedSpec, "v1"))
	h.converge("demo")
	h.rec.takeCalls()
	h.put("demo", fmt.Sprintf(hookedSpec, "v2"))
	v := h.converge("demo")
	if got := strings.Join(h.rec.takeCalls(), "; "); strings.Contains(got, "v2:1") || strings.Contains(got, "v2:2") {
		t.Fatalf("v2 instances started before its pre-release hook passed: %s", got)
	}
	if v.Status.Phase != rollout.Progressing || !strings.Contains(v.Status.Message, "waiting for the pre-release hook of v2: migrating") {
		t.Fatalf("status %s %q", v.Status.Phase, v.Status.Message)
	}
	hooks.set("v2", rollout.HookPreRelease, rollout.HookFailed)
	if v = h.converge("demo"); v.Status.Phase != rollout.Paused {
		t.Fatalf("after a failed hook: %s %q", v.Status.Phase, v.Status.Message)
	}
	hooks.set("v2", rollout.HookPreRelease, rollout.HookPassed)
	v = h.converge("demo")
	if v.Status.Phase != rollout.Healthy || v.Status.StableVersion != "v2" {
		t.Fatalf("after the hook passed: %s %q", v.Status.Phase, v.Status.Message)
	}
	hooks.mu.Lock()
	calls, released := strings.Join(hooks.calls, "; "), strings.Join(hooks.released, ",")
	hooks.mu.Unlock()
	if !strings.HasPrefix(calls, "start v2 preRelease") {
		t.Fatalf("hook calls %q", calls)
	}
	if !strings.Contains(released, "v2") {
		t.Fatalf("post-release asked for %q, want v2", released)
	}
}

// A frozen engine starts no new release; unfreezing lets it start.
func TestEngineFrozen(t *testing.T) {
	h := newHarness(t)
	z := &freezer{}
	h.eng = New(Config{Source: h.src, Store: h.store, Resolver: h.rec, Clock: h.clock, Freezer: z, Env: "prod",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go h.eng.watch(h.ctx)
	<-h.eng.Synced()
	h.put("demo", fmt.Sprintf(demoSpec, "v1"))
	h.converge("demo")
	h.rec.takeCalls()
	z.mu.Lock()
	z.reason = "quarter close"
	z.mu.Unlock()
	h.put("demo", fmt.Sprintf(demoSpec, "v2"))
	v := h.converge("demo")
	if calls := h.rec.takeCalls(); len(calls) != 0 || v.Status.Phase != rollout.Paused || !strings.Contains(v.Status.Message, "quarter close") || v.Env != "prod" {
		t.Fatalf("frozen: calls %q, %s %q (env %q)", calls, v.Status.Phase, v.Status.Message, v.Env)
	}
	z.mu.Lock()
	z.reason = ""
	z.mu.Unlock()
	if v = h.converge("demo"); v.Status.CanaryVersion != "v2" {
		t.Fatalf("unfrozen: %s %q", v.Status.Phase, v.Status.Message)
	}
}
