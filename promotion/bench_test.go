package promotion_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/promotion"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/enginetest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// target is the centre a benchmark promotes into.
type target struct {
	src configsync.Source
	w   configsync.Writer
}

// BenchmarkPromotionToFirstBackendAction measures, per centre holding the
// target environment's release documents, the time from a promotion
// request (Controller.Promote: refresh the states, evaluate, read and
// write the target's document in its centre) to the target engine's first
// backend action for the promoted version (the centre's watch delivered
// the document, the engine planned and applied it). The source
// environment is in memory; backends are instant (enginetest.Signalling).
// Run with -benchtime=30x for the figures in docs/benchmarks.md.
func BenchmarkPromotionToFirstBackendAction(b *testing.B) {
	testenv.IntegrationTest(b)
	cli := etcdtest.Start(b).Client()
	b.Run("etcd", func(b *testing.B) {
		// a fresh prefix per run: the benchmark function runs more than once
		s := etcdsource.New(etcdsource.Config{Client: cli, Prefix: fmt.Sprintf("/bench/%d/prod/apps/", time.Now().UnixNano())})
		b.Cleanup(func() { _ = s.Close() })
		benchPromote(b, cli, target{s, s})
	})
	b.Run("nacos", func(b *testing.B) {
		srv := polaris.Start(b)
		s, err := nacos.New(context.Background(), nacos.Config{Servers: []string{srv.NacosAddr()}, Namespace: "prod", Group: "GRAYLANE_RELEASES",
			CacheDir: b.TempDir(), LogDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		benchPromote(b, cli, target{s, s})
	})
	b.Run("apollo", func(b *testing.B) {
		srv := apolloserver.New(apolloserver.Options{Envs: []string{"PRO"}})
		if err := srv.Start(); err != nil {
			testenv.Unavailable(b, "apollo test server: %v", err)
		}
		b.Cleanup(srv.Close)
		if err := srv.CreateApp("graylane", ""); err != nil {
			b.Fatal(err)
		}
		ns, err := srv.CreateNamespace("graylane", "graylane-releases", apolloserver.FormatProperties)
		for _, e := range []error{err, srv.CreateToken("bench-token"), srv.GrantApp("bench-token", "graylane")} {
			if e != nil {
				b.Fatal(e)
			}
		}
		if _, err := srv.Publish("graylane", "default", ns, "init"); err != nil {
			b.Fatal(err)
		}
		s, err := apollo.New(apollo.Config{ConfigService: srv.URL(), Portal: srv.PortalURL(), Token: "bench-token", Env: "PRO", Namespace: ns,
			CacheDir: b.TempDir(), ProbeInterval: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		benchPromote(b, cli, target{s, s})
	})
}

func benchPromote(b *testing.B, cli *clientv3.Client, tgt target) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	set, err := environments.Parse([]any{map[string]any{"name": "test"}, map[string]any{"name": "prod", "from": "test"}}, "")
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const app = "bench"
	testSrc := memory.New()
	backends := map[string]*enginetest.Signalling{}
	engines := map[string]*engine.Engine{}
	envs := map[string]*promotion.Env{}
	bundle := func(_ context.Context, rel *spec.Release) (environments.Bundle, string, error) {
		return environments.NewBundle(rel.App, rel.Version, nil), "", nil
	}
	for i, src := range []struct {
		s configsync.Source
		w configsync.Writer
	}{{testSrc, testSrc}, {tgt.src, tgt.w}} {
		name := set.Envs[i].Name
		be := enginetest.NewSignalling(b.N + 4)
		eng := engine.New(engine.Config{Source: src.s, Store: engine.NewMemoryStore(), Resolver: be, Env: name, Logger: log})
		be.Notify(eng.Trigger)
		go eng.Run(ctx)
		backends[name], engines[name] = be, eng
		envs[name] = &promotion.Env{Config: &set.Envs[i], Engine: eng, Source: src.s, Writer: src.w, Bundle: bundle}
	}
	store := promotion.NewStore(cli, fmt.Sprintf("/bench/%d/promotion/", time.Now().UnixNano()))
	ctl, err := promotion.New(promotion.Config{Set: set, Envs: envs, Store: store, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = ctl.Run(ctx) }()
	if err := ctl.WaitFreezes(ctx); err != nil {
		b.Fatal(err)
	}
	testSrc.Set(app, []byte(enginetest.Doc(app, "v0")))
	if _, err := tgt.w.Put(ctx, app, []byte(enginetest.Doc(app, "v0")), ""); err != nil {
		b.Fatal(err)
	}
	for _, e := range []string{"test", "prod"} {
		if _, err := backends[e].WaitFor(app, "v0", 60*time.Second); err != nil {
			b.Fatalf("%s: %v", e, err)
		}
	}
	healthy := func(env, v string) {
		testenv.Eventually(b, 60*time.Second, app+" "+v+" Healthy in "+env, func() error {
			av, err := engines[env].App(ctx, app)
			if err != nil {
				return err
			}
			return testenv.Check(av.Status.Phase == rollout.Healthy && av.Status.StableVersion == v, "%s %s", av.Status.Phase, av.Status.StableVersion)
		})
	}
	healthy("prod", "v0")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		v := fmt.Sprintf("v%d", i+1)
		testSrc.Set(app, []byte(enginetest.Doc(app, v)))
		if _, err := backends["test"].WaitFor(app, v, 60*time.Second); err != nil {
			b.Fatal(err)
		}
		healthy("test", v)
		// one promotion a second at most: the centres' own pace (Polaris
		// drops pushes of back-to-back writes)
		time.Sleep(time.Second)
		b.StartTimer()
		start := time.Now()
		r, err := ctl.Promote(ctx, "prod", app, "", promotion.Caller{Name: "bench", Via: "bench", CanRelease: true})
		if err != nil || r.Outcome != promotion.Promoted {
			b.Fatalf("promote %s: %+v %v", v, r, err)
		}
		at, err := backends["prod"].WaitFor(app, v, 75*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, at.Sub(start))
		b.StopTimer()
		healthy("prod", v)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*9/10)]), "p90-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}
