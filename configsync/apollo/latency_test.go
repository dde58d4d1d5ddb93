package apollo

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkReleaseToEvent measures the latency from a release in Apollo
// (the portal's Release button: item edit + publish) to the Source's watch
// delivering it. Releases are spread at random over agollo's poll cycle
// (agollo pauses a fixed 2 s between long polls, and a release during the
// pause waits for it to end), so the figures are what an operator sees.
// The test server uses Apollo's 60 s long-poll hold. Run it with:
//
//	go test -run '^$' -bench BenchmarkReleaseToEvent -benchtime 50x ./configsync/apollo/
//
// It reports p50, p99 and max in milliseconds (the goal: p99 within the
// 2 s poll + 100 ms).
func BenchmarkReleaseToEvent(b *testing.B) {
	testenv.IntegrationTest(b)
	srv := newServer(b, apolloserver.Options{})
	setupNamespace(b, srv)
	publishDoc(b, srv, "demo", doc("demo", "v0"))
	src := newSource(b, testConfig(b, srv))
	c := sourcetest.Collect(b, src.Watch(ctxT(b), 0))
	c.WaitData(b, "demo", doc("demo", "v0"), within)
	rng := rand.New(rand.NewPCG(1, uint64(b.N)))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		// Wait a random part of agollo's cycle (2 s pause + the answered
		// poll) so releases do not all land at the same phase.
		time.Sleep(time.Duration(rng.Int64N(int64(2500 * time.Millisecond))))
		data := doc("demo", fmt.Sprintf("v%d", i+1))
		start := time.Now()
		publishDoc(b, srv, "demo", data)
		c.WaitData(b, "demo", data, within)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(pct(0.50)), "p50-ms")
	b.ReportMetric(ms(pct(0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(0, "ns/op") // the wall time per op is dominated by the deliberate spreading
	b.Logf("%d releases: p50 %v, p99 %v, max %v, min %v", len(lat), pct(0.50), pct(0.99), lat[len(lat)-1], lat[0])
}
