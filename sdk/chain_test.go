package sdk_test

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/grayrouter"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

var chainApps = []string{"svc-a", "svc-b", "svc-c"}

// releaseOf is the release of one app of the chain: canary v2 over v1,
// testers (X-Tester: yes) to the canary.
func releaseOf(t testing.TB, app string) *spec.Release {
	t.Helper()
	rel, err := spec.Parse([]byte(fmt.Sprintf(`
app: %s
version: v2
replicas: 1
strategy: {steps: [{setWeight: 20}, {pause: {}}, {setWeight: 50}]}
backend: {type: registry}
traffic: {type: gray}
gray:
  rules:
    - name: testers
      match: {headers: [{name: X-Tester, equals: "yes"}]}
      target: canary
`, app)))
	sdktest.Must(t, "parse release", err)
	return rel
}

// publishAll publishes split (v2 at w%) for every app with the desired
// counts, and returns the generation each app's document reached.
func publishAll(t testing.TB, r *grayrouter.Router, w int, desired traffic.Replicas) map[string]int64 {
	t.Helper()
	ctx := sdktest.Ctx(t, 30*time.Second)
	gens := map[string]int64{}
	for _, app := range chainApps {
		rel := releaseOf(t, app)
		split := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v2", Weight: w}, {Version: "v1", Weight: 100 - w}}}
		if desired != nil {
			sdktest.Must(t, "desired "+app, r.Desired(ctx, rel, desired))
		}
		sdktest.Must(t, "publish "+app, r.SetWeights(ctx, rel, split))
		d, err := r.Document(ctx, app)
		sdktest.Must(t, "read back "+app, err)
		gens[app] = d.Generation
	}
	return gens
}

// measure sends one request per user through the chain and returns, per
// user, the version every hop agreed on.
func measure(t testing.TB, ch *sdktest.Chain, users int, header map[string]string) map[int]string {
	t.Helper()
	ctx := sdktest.Ctx(t, 3*time.Minute)
	out := make(map[int]string, users)
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				hops, err := ch.Call(ctx, fmt.Sprintf("user-%d", u), header)
				if err == nil {
					var v string
					if v, err = sdktest.Uniform(hops); err == nil {
						mu.Lock()
						out[u] = v
						mu.Unlock()
						continue
					}
				}
				select {
				case errs <- fmt.Errorf("user-%d: %w", u, err):
				default:
				}
			}
		}()
	}
	for u := 0; u < users; u++ {
		work <- u
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return out
}

// checkSplit asserts that every user is where its bucket says and that the
// share on v2 is w% within tolerance.
func checkSplit(t testing.TB, got map[int]string, w int) {
	t.Helper()
	on := 0
	for u, v := range got {
		b, _ := gray.Bucket(spec.DefaultGraySalt, fmt.Sprintf("user-%d", u))
		want := "v1"
		if b < w*100 {
			want = "v2"
		}
		if v != want {
			t.Fatalf("at v2 %d%%: user-%d (bucket %d) reached %s at every hop, want %s", w, u, b, v, want)
		}
		if v == "v2" {
			on++
		}
	}
	share := float64(on) / float64(len(got)) * 100
	t.Logf("at v2 %d%%: %d of %d users (%.2f%%) on v2 at every hop", w, on, len(got), share)
	if math.Abs(share-float64(w)) > 2 {
		t.Fatalf("at v2 %d%%, %.2f%% of users reached v2, want %d%% ± 2", w, share, w)
	}
}

func TestChainEtcd(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	log := sdktest.Logger(t, slog.LevelWarn)
	reg := etcdreg.New(etcdreg.Config{Client: cli, Logger: log})
	rules := etcdreg.Rules(cli, "")
	t.Cleanup(func() { _ = rules.Close() })
	store := etcdsource.New(etcdsource.Config{Client: cli, Prefix: gray.DefaultRulesPrefix})
	t.Cleanup(func() { _ = store.Close() })
	router, err := grayrouter.New(grayrouter.Config{Store: store, Centre: "etcd", Logger: log})
	sdktest.Must(t, "gray router", err)

	for _, mode := range []struct {
		name         string
		async, strip bool
	}{{"sync", false, false}, {"async-hops", true, false}, {"rederived-at-every-hop", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			ch := sdktest.StartChain(t, sdktest.ChainConfig{Apps: chainApps, Versions: []string{"v1", "v2"},
				Rules: rules, Registry: reg, Async: mode.async, StripDecision: mode.strip, Logger: log})
			// Without the propagated decision only the user key travels:
			// a request header the edge matched is not seen downstream, so
			// the testers check needs the decision (the default).
			chainScenario(t, ch, router, 10*time.Second, 3000, !mode.strip)
		})
	}
}

// chainScenario: publish v2 at 20% for every app; users in the canary
// bucket reach v2 at every hop, the others v1, and the share matches;
// testers reach v2 whatever their bucket; raising the weight to 50% in
// the centre moves more users without restarting anything and keeps the
// first ones; an abort (v2 at 0, wanted at 0) sends everyone, testers
// too, back to v1.
func chainScenario(t *testing.T, ch *sdktest.Chain, router *grayrouter.Router, within time.Duration, users int, testersToo bool) {
	want := traffic.Replicas{"v1": 1, "v2": 1}
	gens := publishAll(t, router, 20, want)
	for app, g := range gens {
		ch.WaitGenerations(t, within, app, g)
	}
	at20 := measure(t, ch, users, nil)
	checkSplit(t, at20, 20)

	if testersToo {
		testers := measure(t, ch, 200, map[string]string{"X-Tester": "yes"})
		for u, v := range testers {
			if v != "v2" {
				t.Fatalf("tester user-%d reached %s, want v2 at every hop", u, v)
			}
		}
	}

	start := time.Now()
	gens = publishAll(t, router, 50, want)
	for app, g := range gens {
		ch.WaitGenerations(t, within, app, g)
	}
	t.Logf("weight 20%% -> 50%% in force at every client after %s", time.Since(start).Round(time.Millisecond))
	at50 := measure(t, ch, users, nil)
	checkSplit(t, at50, 50)
	for u, v := range at20 {
		if v == "v2" && at50[u] != "v2" {
			t.Fatalf("user-%d was on v2 at 20%% but not at 50%%", u)
		}
	}

	gens = publishAll(t, router, 0, traffic.Replicas{"v1": 1, "v2": 0})
	for app, g := range gens {
		ch.WaitGenerations(t, within, app, g)
	}
	for name, h := range map[string]map[string]string{"users": nil, "testers": {"X-Tester": "yes"}} {
		for u, v := range measure(t, ch, 300, h) {
			if v != "v1" {
				t.Fatalf("after the abort, %s user-%d reached %s, want v1 at every hop", name, u, v)
			}
		}
	}
}
