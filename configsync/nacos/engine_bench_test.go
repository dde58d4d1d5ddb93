package nacos_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/enginetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkNacosPublishToFirstBackendAction publishes release documents in
// Nacos (Polaris) as the console would and measures, in the same run:
//
//	push    publish -> a bare nacos-sdk-go ListenConfig callback (Polaris' own push)
//	action  publish -> graylane's first backend action for the new version
//	added   action - push, per edit: what graylane adds on top of Nacos
//
// Run with -benchtime=100x for the 100-edit figure in docs/benchmarks.md.
func BenchmarkNacosPublishToFirstBackendAction(b *testing.B) {
	testenv.IntegrationTest(b)
	srv := polaris.Start(b)
	group := "GRAYLANE_BENCH"
	const app = "bench"
	srv.PublishConfig(b, group, "graylane.index", "apps: [bench]\n")
	srv.PublishConfig(b, group, app, enginetest.Doc(app, "v0"))

	// the bare listener: Polaris' own push latency, measured beside graylane
	bare := bareSDKClient(b, constant.ServerConfig{IpAddr: srv.Host(), Port: uint64(srv.Port())})
	var mu sync.Mutex
	pushed := map[string]time.Time{}
	if err := bare.ListenConfig(vo.ConfigParam{DataId: app, Group: group, OnChange: func(_, _, _, data string) {
		now := time.Now()
		for _, line := range strings.Split(data, "\n") {
			if v, ok := strings.CutPrefix(line, "version: "); ok {
				mu.Lock()
				if _, seen := pushed[v]; !seen {
					pushed[v] = now
				}
				mu.Unlock()
			}
		}
	}}); err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newSource(b, srv, group)
	be := enginetest.NewSignalling(16)
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: be,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	be.Notify(eng.Trigger)
	go eng.Run(ctx)
	if _, err := be.WaitFor(app, "v0", 30*time.Second); err != nil {
		b.Fatal(err)
	}
	var action, push, added []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// one edit a second: back-to-back publishes (20+ in 20 s) made
		// Polaris stop pushing one change to every listener, the bare SDK
		// one included; a second apart is still far above an operator's pace
		b.StopTimer()
		time.Sleep(time.Second)
		b.StartTimer()
		v := fmt.Sprintf("v%d", i+1)
		start := time.Now()
		srv.PublishConfig(b, group, app, enginetest.Doc(app, v))
		// a change Polaris never pushes is caught by the source's resync
		// (30 s), so allow more than that
		at, err := be.WaitFor(app, v, 75*time.Second)
		if err != nil {
			mu.Lock()
			_, pushedToo := pushed[v]
			mu.Unlock()
			b.Fatalf("%v (the bare SDK listener saw it: %v)", err, pushedToo)
		}
		var p time.Time
		testenv.Eventually(b, 30*time.Second, "the bare listener sees "+v, func() error {
			mu.Lock()
			p = pushed[v]
			mu.Unlock()
			return testenv.Check(!p.IsZero(), "no push of %s seen", v)
		})
		action = append(action, at.Sub(start))
		push = append(push, p.Sub(start))
		added = append(added, at.Sub(p))
	}
	b.StopTimer()
	pct := func(d []time.Duration, q float64) float64 {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[int(float64(len(s)-1)*q)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(action, .5), "action-p50-ms")
	b.ReportMetric(pct(action, .99), "action-p99-ms")
	b.ReportMetric(pct(push, .5), "push-p50-ms")
	b.ReportMetric(pct(push, .99), "push-p99-ms")
	b.ReportMetric(pct(added, .5), "added-p50-ms")
	b.ReportMetric(pct(added, .99), "added-p99-ms")
}
