package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// Defaults of the harnesses' timing fields.
const (
	DefaultEventually = 60 * time.Second
	DefaultQuiet      = time.Second
	DefaultPoll       = 50 * time.Millisecond
)

// BackendHarness is what RunBackend needs for one case.
type BackendHarness struct {
	// Backend is the adapter under test. It must know no instance of the
	// Release's app when the case starts.
	Backend adapters.Backend
	// Release returns a valid release of the app under test whose desired
	// version is version (Apply is called with it).
	Release func(version string) *spec.Release
	// Eventually bounds each wait for Observe to show the desired state
	// (default 60s).
	Eventually time.Duration
	// Quiet is how long a case keeps observing after a call that must change
	// nothing, asserting that nothing changes (default 1s).
	Quiet time.Duration
	// Poll is the interval between observations (default 50ms).
	Poll time.Duration
}

func (h *BackendHarness) defaults() {
	if h.Eventually <= 0 {
		h.Eventually = DefaultEventually
	}
	if h.Quiet <= 0 {
		h.Quiet = DefaultQuiet
	}
	if h.Poll <= 0 {
		h.Poll = DefaultPoll
	}
}

// RunBackend runs the Backend contract's cases (see adapters.Backend), each
// as a subtest with its own harness from newHarness.
func RunBackend(t *testing.T, newHarness func(t *testing.T) *BackendHarness) {
	cases := []struct {
		name string
		run  func(t *testing.T, h *BackendHarness)
	}{
		{"ApplyIsIdempotent", backendApplyIdempotent},
		{"ObserveHasNoSideEffects", backendObserveNoSideEffects},
		{"ScaleUpAndDown", backendScale},
		{"AbsentVersionGoesToZero", backendAbsentVersion},
		{"CancelledContext", backendCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			if h == nil || h.Backend == nil || h.Release == nil {
				t.Fatal("adaptertest: the harness needs Backend and Release")
			}
			h.defaults()
			c.run(t, h)
		})
	}
}

// backendApplyIdempotent: applying the same thing twice starts nothing and
// stops nothing.
func backendApplyIdempotent(t *testing.T, h *BackendHarness) {
	ctx := context.Background()
	rel := h.Release("v1")
	want := traffic.Replicas{"v1": 2}
	apply(t, h, rel, want)
	before := WaitReplicas(t, h, rel.App, want)

	apply(t, h, rel.Clone(), traffic.Replicas{"v1": 2})
	h.stayUnchanged(t, ctx, rel.App, identities(before), "after applying the same replicas twice")
	after := WaitReplicas(t, h, rel.App, want)
	if !reflect.DeepEqual(identities(before), identities(after)) {
		t.Fatalf("a second identical Apply changed the instances:\nbefore %v\nafter  %v", identities(before), identities(after))
	}
}

// backendObserveNoSideEffects: observing repeatedly changes nothing, and
// observing an unknown app creates nothing.
func backendObserveNoSideEffects(t *testing.T, h *BackendHarness) {
	ctx := context.Background()
	rel := h.Release("v1")
	for i := 0; i < 3; i++ {
		got, err := h.Backend.Observe(ctx, rel.App)
		if err != nil {
			t.Fatalf("Observe(%s) before any Apply: %v", rel.App, err)
		}
		if len(got) != 0 {
			t.Fatalf("Observe(%s) before any Apply = %v, want no instance", rel.App, got)
		}
	}
	want := traffic.Replicas{"v1": 1}
	apply(t, h, rel, want)
	first := sortInstances(WaitReplicas(t, h, rel.App, want))
	for i := 0; i < 20; i++ {
		got, err := h.Backend.Observe(ctx, rel.App)
		if err != nil {
			t.Fatalf("Observe #%d: %v", i, err)
		}
		if got = sortInstances(got); !reflect.DeepEqual(got, first) {
			t.Fatalf("Observe #%d differs from the first observation:\nfirst %+v\nnow   %+v", i, first, got)
		}
	}
	if _, err := h.Backend.Observe(ctx, "adaptertest-unknown-app"); err != nil {
		t.Fatalf("Observe of an unknown app: %v (want no error, no instance)", err)
	}
}

// backendScale: scale up and down per version reaches the desired counts and
// disturbs nothing beyond the change.
func backendScale(t *testing.T, h *BackendHarness) {
	v1 := h.Release("v1")
	app := v1.App

	apply(t, h, v1, traffic.Replicas{"v1": 1})
	one := byVersion(WaitReplicas(t, h, app, traffic.Replicas{"v1": 1}))

	apply(t, h, v1, traffic.Replicas{"v1": 3})
	three := byVersion(WaitReplicas(t, h, app, traffic.Replicas{"v1": 3}))
	requireSubset(t, one["v1"], three["v1"], "scaling v1 from 1 to 3 replaced its instance")

	v2 := h.Release("v2")
	apply(t, h, v2, traffic.Replicas{"v1": 3, "v2": 2})
	both := byVersion(WaitReplicas(t, h, app, traffic.Replicas{"v1": 3, "v2": 2}))
	requireSubset(t, three["v1"], both["v1"], "starting v2 disturbed v1")

	apply(t, h, v2, traffic.Replicas{"v1": 1, "v2": 2})
	down := byVersion(WaitReplicas(t, h, app, traffic.Replicas{"v1": 1, "v2": 2}))
	requireSubset(t, down["v1"], both["v1"], "scaling v1 down started a new v1 instance")
	requireSubset(t, both["v2"], down["v2"], "scaling v1 down disturbed v2")

	apply(t, h, v2, traffic.Replicas{"v1": 0, "v2": 0})
	WaitReplicas(t, h, app, traffic.Replicas{})
}

// backendAbsentVersion: a version absent from Replicas is wanted at zero.
func backendAbsentVersion(t *testing.T, h *BackendHarness) {
	v2 := h.Release("v2")
	apply(t, h, h.Release("v1"), traffic.Replicas{"v1": 2})
	WaitReplicas(t, h, v2.App, traffic.Replicas{"v1": 2})
	apply(t, h, v2, traffic.Replicas{"v1": 2, "v2": 1})
	before := byVersion(WaitReplicas(t, h, v2.App, traffic.Replicas{"v1": 2, "v2": 1}))

	apply(t, h, v2, traffic.Replicas{"v2": 1})
	after := byVersion(WaitReplicas(t, h, v2.App, traffic.Replicas{"v2": 1}))
	if !reflect.DeepEqual(before["v2"], after["v2"]) {
		t.Fatalf("dropping v1 from Replicas disturbed v2: before %v, after %v", before["v2"], after["v2"])
	}
	apply(t, h, v2, traffic.Replicas{})
	WaitReplicas(t, h, v2.App, traffic.Replicas{})
}

// backendCancelled: an already-cancelled ctx makes Apply and Observe return
// its error promptly, and the cancelled Apply starts nothing.
func backendCancelled(t *testing.T, h *BackendHarness) {
	rel := h.Release("v1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	start := time.Now()
	err := h.Backend.Apply(ctx, rel, traffic.Replicas{"v1": 1}, adapters.NoStep)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled ctx = %v, want context.Canceled", err)
	}
	_, err = h.Backend.Observe(ctx, rel.App)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Observe with a cancelled ctx = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("calls with a cancelled ctx took %s, want them to return promptly", d)
	}
	h.stayUnchanged(t, context.Background(), rel.App, nil, "after an Apply with a cancelled ctx")

	// A later live Apply works normally.
	apply(t, h, rel, traffic.Replicas{"v1": 1})
	WaitReplicas(t, h, rel.App, traffic.Replicas{"v1": 1})
}

func apply(t *testing.T, h *BackendHarness, rel *spec.Release, want traffic.Replicas) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Eventually)
	defer cancel()
	if err := h.Backend.Apply(ctx, rel, want, adapters.NoStep); err != nil {
		t.Fatalf("Apply(%s, %v): %v", rel.App, want, err)
	}
}

// WaitReplicas polls Observe until app has exactly want[v] instances of each
// version v, all ready, and none of other versions, and returns them. It
// fails the test at h.Eventually.
func WaitReplicas(t *testing.T, h *BackendHarness, app string, want traffic.Replicas) []adapters.Instance {
	t.Helper()
	h.defaults()
	var got []adapters.Instance
	testenv.Eventually(t, h.Eventually, fmt.Sprintf("app %s at %v, all ready", app, want), func() error {
		var err error
		got, err = h.Backend.Observe(context.Background(), app)
		return testenv.Check(err == nil && matches(got, want), "app %s has %s (err %v)", app, Describe(got), err)
	})
	return got
}

// stayUnchanged observes app for h.Quiet and fails as soon as its instance
// identities differ from want (nil: no instance).
func (h *BackendHarness) stayUnchanged(t *testing.T, ctx context.Context, app string, want []string, when string) {
	t.Helper()
	end := time.Now().Add(h.Quiet)
	for {
		got, err := h.Backend.Observe(ctx, app)
		if err != nil {
			t.Fatalf("Observe %s: %v", when, err)
		}
		if ids := identities(got); !reflect.DeepEqual(ids, want) && !(len(ids) == 0 && len(want) == 0) {
			t.Fatalf("instances changed %s: want %v, got %v", when, want, ids)
		}
		if time.Now().After(end) {
			return
		}
		time.Sleep(h.Poll)
	}
}

func matches(got []adapters.Instance, want traffic.Replicas) bool {
	n := map[string]int{}
	for _, in := range got {
		if !in.Ready {
			return false
		}
		n[in.Version]++
	}
	for v, c := range n {
		if want[v] != c {
			return false
		}
	}
	for v, c := range want {
		if n[v] != c {
			return false
		}
	}
	return true
}

// identity names one running incarnation of an instance: a restarted or
// replaced instance gets a new one (a new address), a kept one keeps it.
func identity(in adapters.Instance) string { return in.ID + "@" + in.Addr }

func identities(ins []adapters.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, identity(in))
	}
	sort.Strings(out)
	return out
}

func byVersion(ins []adapters.Instance) map[string][]string {
	out := map[string][]string{}
	for _, in := range ins {
		out[in.Version] = append(out[in.Version], identity(in))
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func requireSubset(t *testing.T, sub, super []string, msg string) {
	t.Helper()
	for _, s := range sub {
		if !slices.Contains(super, s) {
			t.Fatalf("%s: %s is gone (had %v, now %v)", msg, s, sub, super)
		}
	}
}

func sortInstances(ins []adapters.Instance) []adapters.Instance {
	out := slices.Clone(ins)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Describe renders instances for failure messages.
func Describe(ins []adapters.Instance) string {
	if len(ins) == 0 {
		return "no instance"
	}
	var b strings.Builder
	for i, in := range sortInstances(ins) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s(%s", in.ID, in.Version)
		if in.Ready {
			b.WriteString(" ready")
		} else {
			fmt.Fprintf(&b, " not ready: %s", in.Message)
		}
		b.WriteString(")")
	}
	return b.String()
}
