package apollo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/enginetest"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkReleaseToFirstBackendAction publishes release documents in
// Apollo as the portal would (item edit + Release) and measures the time to
// graylane's first backend action for the new version, through agollo,
// the source and the real engine. Releases land at random points of
// agollo's 2 s poll cycle. Run with -benchtime=50x for docs/benchmarks.md.
func BenchmarkReleaseToFirstBackendAction(b *testing.B) {
	testenv.IntegrationTest(b)
	srv := newServer(b, apolloserver.Options{})
	setupNamespace(b, srv)
	publishDoc(b, srv, "demo", []byte(enginetest.Doc("demo", "v0")))
	src := newSource(b, testConfig(b, srv))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	be := enginetest.NewSignalling(16)
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: be,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	be.Notify(eng.Trigger)
	go eng.Run(ctx)
	if _, err := be.WaitFor("demo", "v0", 30*time.Second); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, uint64(b.N)))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		time.Sleep(time.Duration(rng.Int64N(int64(2500 * time.Millisecond))))
		b.StartTimer()
		v := fmt.Sprintf("v%d", i+1)
		start := time.Now()
		publishDoc(b, srv, "demo", []byte(enginetest.Doc("demo", v)))
		at, err := be.WaitFor("demo", v, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, at.Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}
