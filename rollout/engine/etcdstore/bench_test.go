package etcdstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/enginetest"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkEtcdPutToFirstBackendAction measures, on embedded etcd, the time
// from starting an etcd put of a spec with a new version to the engine's
// first backend action for that version. Run with -benchtime=1000x for the
// 1,000-edit figure in docs/benchmarks.md.
func BenchmarkEtcdPutToFirstBackendAction(b *testing.B) {
	testenv.IntegrationTest(b)
	// fsync: etcd as in production; nofsync: the disk taken out, leaving
	// graylane's own overhead plus etcd's in-memory path.
	b.Run("fsync", func(b *testing.B) { benchPutToAction(b, false) })
	b.Run("nofsync", func(b *testing.B) { benchPutToAction(b, true) })
}

func benchPutToAction(b *testing.B, noFsync bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opts []etcdtest.Option
	if !noFsync {
		opts = append(opts, etcdtest.WithFsync())
	}
	cli := etcdtest.Start(b, opts...).Client()
	src := etcdsource.New(etcdsource.Config{Client: cli, Prefix: ""})
	defer src.Close()
	be := enginetest.NewSignalling(16)
	eng := engine.New(engine.Config{Source: src, Store: etcdstore.New(cli, ""), Resolver: be,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	be.Notify(eng.Trigger)
	go eng.Run(ctx)
	put := func(v string) time.Duration {
		start := time.Now()
		if _, err := cli.Put(ctx, "/graylane/apps/bench", enginetest.Doc("bench", v)); err != nil {
			b.Fatal(err)
		}
		at, err := be.WaitFor("bench", v, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		return at.Sub(start)
	}
	put("v0")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, put(fmt.Sprintf("v%d", i+1)))
	}
	b.StopTimer()
	report(b, lat)
}

func report(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
