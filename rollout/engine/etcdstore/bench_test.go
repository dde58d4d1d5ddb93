package etcdstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/spec"
)

// signalling is a backend whose instances are ready at once and which
// notifies the engine after every change, like the process backend does;
// it reports the first Apply asking for instances of each version.
type signalling struct {
	mu     sync.Mutex
	want   map[string]int
	seen   map[string]bool
	first  chan string
	notify func(string)
}

func (s *signalling) Notify(fn func(string)) { s.notify = fn }

func (s *signalling) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []adapters.Instance
	for v, n := range s.want {
		for i := 0; i < n; i++ {
			out = append(out, adapters.Instance{ID: fmt.Sprintf("%s-%d", v, i), Version: v, Ready: true})
		}
	}
	return out, nil
}

func (s *signalling) Apply(ctx context.Context, rel *spec.Release, want adapters.Replicas) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := fmt.Sprint(s.want) != fmt.Sprint(map[string]int(want))
	s.want = map[string]int(want)
	if changed && s.notify != nil {
		go s.notify(rel.App)
	}
	for v, n := range want {
		if n > 0 && !s.seen[v] {
			s.seen[v] = true
			s.first <- v
		}
	}
	return nil
}

func (s *signalling) Backend(*spec.Release) (adapters.Backend, error)      { return s, nil }
func (s *signalling) Router(*spec.Release) (adapters.TrafficRouter, error) { return nil, nil }

// BenchmarkEtcdPutToFirstBackendAction measures, on embedded etcd with
// fsync, the time from starting an etcd put of a spec with a new version to
// the engine's first backend action for that version. Run with
// -benchtime=1000x for the 1,000-edit figure in docs/benchmarks.md.
func BenchmarkEtcdPutToFirstBackendAction(b *testing.B) {
	// fsync: etcd as in production; nofsync: the disk taken out, leaving
	// graylane's own overhead plus etcd's in-memory path.
	b.Run("fsync", func(b *testing.B) { benchPutToAction(b, false) })
	b.Run("nofsync", func(b *testing.B) { benchPutToAction(b, true) })
}

func benchPutToAction(b *testing.B, noFsync bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := etcdserver.Start(ctx, etcdserver.Config{Dir: b.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: noFsync})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cli, err := srv.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	src := etcdsource.New(cli, "")
	defer src.Close()
	be := &signalling{seen: map[string]bool{}, first: make(chan string, 16)}
	eng := engine.New(engine.Config{Source: src, Store: etcdstore.New(cli, ""), Resolver: be,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	be.Notify(eng.Trigger)
	go eng.Run(ctx)
	doc := func(v string) string {
		return fmt.Sprintf("app: bench\nversion: %s\nreplicas: 1\nstrategy: {type: rolling, maxSurge: 1, maxUnavailable: 0}\nbackend: {type: process, process: {command: [x]}}\n", v)
	}
	put := func(v string) time.Duration {
		start := time.Now()
		if _, err := cli.Put(ctx, "/graylane/apps/bench", doc(v)); err != nil {
			b.Fatal(err)
		}
		for {
			select {
			case got := <-be.first:
				if got == v {
					return time.Since(start)
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("no backend action for %s", v)
			}
		}
	}
	put("v0")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, put(fmt.Sprintf("v%d", i+1)))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
