package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Names of the routing headers and cookie the Split contract defines.
const (
	// PreviewHeader reaches traffic.Split.Preview, for callers the release
	// trusts (traffic.trust; a harness's Release trusts its probes).
	PreviewHeader = "X-Graylane-Version"
	// DefaultStickyHeader and DefaultStickyCookie apply when the release's
	// traffic section does not name others.
	DefaultStickyHeader = "X-Gray-User"
	DefaultStickyCookie = "gray_user"
)

// RouterHarness is what RunRouter needs for one case.
type RouterHarness struct {
	// Router is the adapter under test; it has never been given a split for
	// the Release's app.
	Router adapters.TrafficRouter
	// Release returns a valid release of the app under test (SetWeights is
	// called with it).
	Release func(version string) *spec.Release
	// Versions are two or more versions with ready instances behind the
	// router. The traffic cases need at least two and a Probe.
	Versions []string
	// Unready, if set, is a version with no ready instance behind the router.
	Unready string
	// Probe sends one request through the router as a client would, with
	// the extra header, and returns the version that served it. Nil skips
	// the cases that send traffic.
	Probe func(ctx context.Context, header http.Header) (version string, err error)
	// Requests is how many probes measure one split (default 400).
	Requests int
	// Tolerance is the largest allowed difference between a version's
	// measured share and its weight, as a fraction (default 0.08).
	Tolerance float64
}

// RunRouter runs the TrafficRouter contract's cases (see
// adapters.TrafficRouter and traffic.Split), each as a subtest with its own
// harness from newHarness.
func RunRouter(t *testing.T, newHarness func(t *testing.T) *RouterHarness) {
	cases := []struct {
		name    string
		traffic bool
		run     func(t *testing.T, h *RouterHarness)
	}{
		{"EmptyBeforeFirstSet", false, routerEmpty},
		{"InvalidSplitRejected", false, routerInvalid},
		{"SetWeightsIdempotentAndReadBack", false, routerReadBack},
		{"CancelledContext", false, routerCancelled},
		{"TrafficFollowsWeights", true, routerTraffic},
		{"StickyUsersStay", true, routerSticky},
		{"PreviewByHeader", true, routerPreview},
		{"UnreadyVersionNeverFails", true, routerUnready},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			if h == nil || h.Router == nil || h.Release == nil {
				t.Fatal("adaptertest: the harness needs Router and Release")
			}
			if c.traffic && (h.Probe == nil || len(h.Versions) < 2) {
				t.Skip("the harness has no Probe or fewer than two Versions")
			}
			if h.Requests <= 0 {
				h.Requests = 400
			}
			if h.Tolerance <= 0 {
				h.Tolerance = 0.08
			}
			c.run(t, h)
		})
	}
}

func split(ws ...any) traffic.Split {
	var s traffic.Split
	for i := 0; i+1 < len(ws); i += 2 {
		s.Weights = append(s.Weights, traffic.VersionWeight{Version: ws[i].(string), Weight: ws[i+1].(int)})
	}
	return s
}

func (h *RouterHarness) set(t *testing.T, s traffic.Split) {
	t.Helper()
	rel := h.Release(h.version(0))
	if err := h.Router.SetWeights(context.Background(), rel, s); err != nil {
		t.Fatalf("SetWeights(%s, %+v): %v", rel.App, s, err)
	}
}

func (h *RouterHarness) weights(t *testing.T) traffic.Split {
	t.Helper()
	app := h.Release(h.version(0)).App
	s, err := h.Router.Weights(context.Background(), app)
	if err != nil {
		t.Fatalf("Weights(%s): %v", app, err)
	}
	return s
}

func (h *RouterHarness) version(i int) string {
	if i < len(h.Versions) {
		return h.Versions[i]
	}
	return fmt.Sprintf("v%d", i+1)
}

func routerEmpty(t *testing.T, h *RouterHarness) {
	for i := 0; i < 2; i++ {
		if s := h.weights(t); len(s.Weights) != 0 || s.Preview != "" {
			t.Fatalf("Weights before any SetWeights = %+v, want an empty Split", s)
		}
	}
}

func routerInvalid(t *testing.T, h *RouterHarness) {
	a, b := h.version(0), h.version(1)
	invalid := []traffic.Split{
		split(a, 50, b, 40),
		split(a, 60, b, 50),
		split(a, 110, b, -10),
		split(a, 50, a, 50),
		split(a, 99),
	}
	check := func(want traffic.Split) {
		t.Helper()
		for _, s := range invalid {
			if err := h.Router.SetWeights(context.Background(), h.Release(a), s); err == nil {
				t.Fatalf("SetWeights(%+v) succeeded, want an error", s)
			}
			if got := h.weights(t); !reflect.DeepEqual(got.Weights, want.Weights) && !(len(got.Weights) == 0 && len(want.Weights) == 0) {
				t.Fatalf("a rejected SetWeights(%+v) changed the split to %+v, want %+v", s, got, want)
			}
		}
	}
	check(traffic.Split{})
	valid := split(b, 25, a, 75)
	h.set(t, valid)
	check(h.weights(t))
	if got := h.weights(t); !got.Equal(valid) {
		t.Fatalf("split after rejected calls = %+v, want %+v", got, valid)
	}
}

func routerReadBack(t *testing.T, h *RouterHarness) {
	a, b := h.version(0), h.version(1)
	for _, s := range []traffic.Split{
		split(b, 20, a, 80),
		split(b, 20, a, 80), // again: idempotent
		{Weights: split(a, 100).Weights, Preview: b},
		split(b, 100, a, 0),
	} {
		h.set(t, s)
		got := h.weights(t)
		if !got.Equal(s) {
			t.Fatalf("Weights after SetWeights(%+v) = %+v", s, got)
		}
		if order, want := nonZero(got), nonZero(s); !slices.Equal(order, want) {
			t.Fatalf("Weights read back %+v: versions in order %v, want %v", got, order, want)
		}
		if again := h.weights(t); !reflect.DeepEqual(again, got) {
			t.Fatalf("Weights is not stable: %+v then %+v", got, again)
		}
	}
}

// nonZero lists the versions with a weight, in the split's order.
func nonZero(s traffic.Split) []string {
	var out []string
	for _, w := range s.Weights {
		if w.Weight > 0 {
			out = append(out, w.Version)
		}
	}
	return out
}

func routerCancelled(t *testing.T, h *RouterHarness) {
	a, b := h.version(0), h.version(1)
	h.set(t, split(a, 100))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Router.SetWeights(ctx, h.Release(a), split(b, 100)); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetWeights with a cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := h.Router.Weights(ctx, h.Release(a).App); !errors.Is(err, context.Canceled) {
		t.Fatalf("Weights with a cancelled ctx = %v, want context.Canceled", err)
	}
	if got := h.weights(t); !got.Equal(split(a, 100)) {
		t.Fatalf("a cancelled SetWeights changed the split to %+v", got)
	}
}

// measure sends n probes with header and returns the count per version.
func (h *RouterHarness) measure(t *testing.T, n int, header http.Header) map[string]int {
	t.Helper()
	got := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < n; i++ {
		v, err := h.Probe(ctx, header)
		if err != nil {
			t.Fatalf("probe %d of %d failed: %v", i+1, n, err)
		}
		got[v]++
	}
	return got
}

func routerTraffic(t *testing.T, h *RouterHarness) {
	a, b := h.version(0), h.version(1)
	for _, only := range []string{a, b} {
		h.set(t, split(only, 100))
		n := h.Requests / 4
		if got := h.measure(t, n, nil); got[only] != n {
			t.Fatalf("at 100%% %s, %d probes were served by %v", only, n, got)
		}
	}
	h.set(t, split(b, 30, a, 70))
	got := h.measure(t, h.Requests, nil)
	if got[a]+got[b] != h.Requests {
		t.Fatalf("at 30/70, probes were served by %v", got)
	}
	share := float64(got[b]) / float64(h.Requests)
	if math.Abs(share-0.30) > h.Tolerance {
		t.Fatalf("at %s 30%%, %s served %.1f%% of %d probes (%v), want within %.0f%%", b, b, share*100, h.Requests, got, h.Tolerance*100)
	}
}

func (h *RouterHarness) stickyNames() (header, cookie string) {
	header, cookie = DefaultStickyHeader, DefaultStickyCookie
	if tr := h.Release(h.version(0)).Traffic; tr != nil {
		if tr.StickyHeader != "" {
			header = tr.StickyHeader
		}
		if tr.StickyCookie != "" {
			cookie = tr.StickyCookie
		}
	}
	return header, cookie
}

func routerSticky(t *testing.T, h *RouterHarness) {
	a, b := h.version(0), h.version(1) // b is the canary
	headerName, cookieName := h.stickyNames()
	const users = 200
	userHeader := func(u int, cookie bool) http.Header {
		hd := http.Header{}
		if cookie {
			hd.Set("Cookie", fmt.Sprintf("%s=user-%d", cookieName, u))
		} else {
			hd.Set(headerName, fmt.Sprintf("user-%d", u))
		}
		return hd
	}
	probe := func(hd http.Header) string {
		for v := range h.measure(t, 1, hd) {
			return v
		}
		return ""
	}
	// onCanary returns the users on b by header and by cookie, checking
	// that each user sees one version on every probe.
	onCanary := func(stage string) (byHeader, byCookie map[int]bool) {
		byHeader, byCookie = map[int]bool{}, map[int]bool{}
		for u := 0; u < users; u++ {
			for _, cookie := range []bool{false, true} {
				first, second := probe(userHeader(u, cookie)), probe(userHeader(u, cookie))
				if first != second {
					t.Fatalf("%s: user-%d (cookie %v) was served by %s then %s", stage, u, cookie, first, second)
				}
				if first == b && cookie {
					byCookie[u] = true
				} else if first == b {
					byHeader[u] = true
				}
			}
		}
		return byHeader, byCookie
	}
	h.set(t, split(b, 10, a, 90))
	at10, cookieAt10 := onCanary("canary at 10%")
	h.set(t, split(b, 20, a, 80))
	at20, cookieAt20 := onCanary("canary at 20%")
	for u := range at10 {
		if !at20[u] {
			t.Fatalf("user-%d (by header) was on the canary at 10%% but not at 20%%", u)
		}
	}
	for u := range cookieAt10 {
		if !cookieAt20[u] {
			t.Fatalf("user-%d (by cookie) was on the canary at 10%% but not at 20%%", u)
		}
	}
	if len(at10) == 0 || len(at20) <= len(at10) || len(at20) > users/2 {
		t.Fatalf("%d of %d users on the canary at 10%% and %d at 20%%: the split does not look weighted", len(at10), users, len(at20))
	}
}

func routerPreview(t *testing.T, h *RouterHarness) {
	a, b := h.version(0), h.version(1)
	h.set(t, traffic.Split{Weights: split(a, 100).Weights, Preview: b})
	n := h.Requests / 8
	if got := h.measure(t, n, http.Header{PreviewHeader: {b}}); got[b] != n {
		t.Fatalf("with %s: %s, %d probes were served by %v", PreviewHeader, b, n, got)
	}
	if got := h.measure(t, n, nil); got[a] != n {
		t.Fatalf("without %s, %d probes were served by %v, want all by %s", PreviewHeader, n, got, a)
	}
}

func routerUnready(t *testing.T, h *RouterHarness) {
	if h.Unready == "" {
		t.Skip("the harness names no Unready version")
	}
	a := h.version(0)
	h.set(t, split(h.Unready, 50, a, 50))
	n := h.Requests / 2
	if got := h.measure(t, n, nil); got[a] != n {
		t.Fatalf("with %s (no ready instance) at 50%%, %d probes were served by %v, want all by %s", h.Unready, n, got, a)
	}
	headerName, _ := h.stickyNames()
	for u := 0; u < 50; u++ {
		hd := http.Header{}
		hd.Set(headerName, fmt.Sprintf("user-%d", u))
		if got := h.measure(t, 1, hd); got[a] != 1 {
			t.Fatalf("sticky user-%d was served by %v, want %s", u, got, a)
		}
	}
}
