package docker_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// BenchmarkContainerStartToReady measures, per container, Apply -> the
// engine's create event (graylane's own part: planning, image check,
// create request) and Apply -> ready (create, start, the app listening,
// the first passing probe) on a private engine with the vfs driver.
//
//	GRAYLANE_INTEGRATION=1 go test -run '^$' -bench ContainerStartToReady -benchtime 10x ./adapters/docker/
func BenchmarkContainerStartToReady(b *testing.B) {
	testenv.IntegrationTest(b)
	e := engine(b)
	const app = "bench"
	removeApp(b, e, app)
	be := newBackend(b, e, func(c *docker.Config) { c.Logger = slog.New(slog.DiscardHandler) })
	rel := release(b, app, "v1", e.Host, "")
	evlog := e.WatchEvents(b, "graylane.io/app="+app)
	var created, ready time.Duration
	for i := 0; i < b.N; i++ {
		n := len(evlog.Events(b))
		start := time.Now()
		if err := be.Apply(context.Background(), rel, traffic.Replicas{"v1": 1}, adapters.NoStep); err != nil {
			b.Fatal(err)
		}
		for {
			ins, err := be.Observe(context.Background(), app)
			if err == nil && len(ins) == 1 && ins[0].Ready {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		ready += time.Since(start)
		for _, ev := range evlog.Events(b)[n:] {
			if ev.Action == "create" {
				created += ev.At.Sub(start)
				break
			}
		}
		b.StopTimer()
		if err := be.Apply(context.Background(), rel, traffic.Replicas{}, adapters.NoStep); err != nil {
			b.Fatal(err)
		}
		for {
			ins, err := be.Observe(context.Background(), app)
			if err == nil && len(ins) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(created.Milliseconds())/float64(b.N), "ms-to-create")
	b.ReportMetric(float64(ready.Milliseconds())/float64(b.N), "ms-to-ready")
}
