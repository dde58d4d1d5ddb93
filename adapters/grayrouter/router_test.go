package grayrouter_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

const withRules = `app: shop
version: v2
backend: {type: registry}
traffic: {type: gray}
gray:
  rules:
    - name: testers
      match: {headers: [{name: X-Tester, equals: "yes"}]}
      target: canary
`

// recorder is a Backend that records Apply calls.
type recorder struct{ applied []traffic.Replicas }

func (r *recorder) Observe(context.Context, string) ([]adapters.Instance, error) { return nil, nil }
func (r *recorder) Apply(_ context.Context, _ *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	r.applied = append(r.applied, want)
	return nil
}

func split(ws ...traffic.VersionWeight) traffic.Split { return traffic.Split{Weights: ws} }
func vw(v string, w int) traffic.VersionWeight        { return traffic.VersionWeight{Version: v, Weight: w} }

func rules(d *gray.Document) string {
	var s []string
	for _, r := range d.Rules {
		s = append(s, r.Name+"="+r.Version)
	}
	return strings.Join(s, ",")
}

// TestPublishFollowsTheEngine walks the calls the engine makes through a
// canary (Apply through Track, then SetWeights) and checks what is
// published at each point, and that unchanged calls publish nothing.
func TestPublishFollowsTheEngine(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	router, store := newRouter(t, cli)
	ctx := sdktest.Ctx(t, time.Minute)
	rel, err := spec.Parse([]byte(withRules))
	sdktest.Must(t, "parse", err)
	rec := &recorder{}
	b := router.Track(rec)

	// before any split: Apply alone publishes nothing
	sdktest.Must(t, "apply", b.Apply(ctx, rel, traffic.Replicas{"v1": 2}, adapters.NoStep))
	if _, err := store.Get(ctx, "shop"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("a document exists before any split: %v", err)
	}
	if len(rec.applied) != 1 {
		t.Fatalf("Track did not pass Apply on: %v", rec.applied)
	}
	steps := []struct {
		name       string
		want       traffic.Replicas
		split      *traffic.Split
		rules      string
		generation int64
	}{
		{"stable", traffic.Replicas{"v1": 2}, &traffic.Split{Weights: []traffic.VersionWeight{vw("v1", 100)}}, "", 1},
		{"canary wanted at weight 0: testers published", traffic.Replicas{"v1": 2, "v2": 1}, nil, "testers=v2", 2},
		{"same again: nothing new", traffic.Replicas{"v1": 2, "v2": 1}, nil, "testers=v2", 2},
		{"20%", traffic.Replicas{"v1": 2, "v2": 1}, &traffic.Split{Weights: []traffic.VersionWeight{vw("v2", 20), vw("v1", 80)}}, "testers=v2", 3},
		{"abort: v2 back to weight 0", traffic.Replicas{"v1": 2, "v2": 1}, &traffic.Split{Weights: []traffic.VersionWeight{vw("v1", 100)}}, "testers=v2", 4},
		{"abort: v2 wanted at 0: testers dropped", traffic.Replicas{"v1": 2, "v2": 0}, nil, "", 5},
	}
	for _, s := range steps {
		sdktest.Must(t, s.name+": apply", b.Apply(ctx, rel, s.want, adapters.NoStep))
		if s.split != nil {
			sdktest.Must(t, s.name+": set weights", router.SetWeights(ctx, rel, *s.split))
		}
		d, err := router.Document(ctx, "shop")
		sdktest.Must(t, s.name+": document", err)
		if rules(d) != s.rules || d.Generation != s.generation {
			t.Fatalf("%s: published rules %q generation %d, want %q generation %d", s.name, rules(d), d.Generation, s.rules, s.generation)
		}
		w, err := router.Weights(ctx, "shop")
		sdktest.Must(t, s.name+": weights", err)
		if s.split != nil && !w.Equal(*s.split) {
			t.Fatalf("%s: Weights = %+v, want %+v", s.name, w, *s.split)
		}
	}

	// a new router (graylane restarted) picks the document up from the
	// centre and keeps the generation rising
	router2, _ := newRouter(t, cli)
	sdktest.Must(t, "apply after restart", router2.Track(rec).Apply(ctx, rel, traffic.Replicas{"v1": 2, "v2": 1}, adapters.NoStep))
	d, err := router2.Document(ctx, "shop")
	sdktest.Must(t, "document after restart", err)
	if rules(d) != "testers=v2" || d.Generation != 6 || d.SplitOf().Map()["v1"] != 100 {
		t.Fatalf("after restart: rules %q generation %d split %v", rules(d), d.Generation, d.Split)
	}

	// a hand-edited, malformed document is replaced at the next change
	_, err = store.Put(ctx, "shop", []byte(`{"schema":"nonsense"}`), "")
	sdktest.Must(t, "break the document", err)
	if _, err := router2.Weights(ctx, "shop"); err == nil || spec.FieldOf(err) != "schema" {
		t.Fatalf("Weights of a malformed document = %v, want an error naming schema", err)
	}
	sdktest.Must(t, "set weights over it", router2.SetWeights(ctx, rel, split(vw("v2", 50), vw("v1", 50))))
	d, err = router2.Document(ctx, "shop")
	sdktest.Must(t, "document after repair", err)
	if d.Generation != 1 || d.SplitOf().Map()["v2"] != 50 {
		t.Fatalf("after repair: %+v", d)
	}

	sdktest.Must(t, "forget", router2.Forget(ctx, "shop"))
	if _, err := router2.Document(ctx, "shop"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("document after Forget: %v", err)
	}
}

// TestConcurrentWriterIsNotLost: a document changed behind the router's
// back (another graylane, a console) makes the compare-and-swap fail; the
// router reads again and publishes on top of it.
func TestConcurrentWriterIsNotLost(t *testing.T) {
	src := memory.New()
	router, err := grayrouter.New(grayrouter.Config{Store: src, Centre: "memory"})
	sdktest.Must(t, "router", err)
	ctx := sdktest.Ctx(t, 10*time.Second)
	rel, _ := spec.Parse([]byte(withRules))
	sdktest.Must(t, "first", router.SetWeights(ctx, rel, split(vw("v1", 100))))
	d, _ := router.Document(ctx, "shop")
	d.Generation = 41
	b, _ := d.Marshal()
	_, err = src.Put(ctx, "shop", b, "")
	sdktest.Must(t, "behind its back", err)
	sdktest.Must(t, "second", router.SetWeights(ctx, rel, split(vw("v2", 10), vw("v1", 90))))
	d, _ = router.Document(ctx, "shop")
	if d.Generation != 42 || d.SplitOf().Map()["v2"] != 10 {
		t.Fatalf("after a concurrent write: generation %d split %v", d.Generation, d.Split)
	}
}
