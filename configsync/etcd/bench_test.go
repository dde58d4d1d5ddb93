package etcd_test

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkPutToEvent measures how long a write made through etcd's own
// client takes to come out of Source.Watch as an event: one op is one put
// of new content followed by waiting for its delivery. It reports the
// median and 99th percentile latency.
//
//	go test -run '^$' -bench PutToEvent -benchtime 2000x ./configsync/etcd
func BenchmarkPutToEvent(b *testing.B) {
	testenv.IntegrationTest(b)
	srv := startServer(b)
	console := client(b, srv.addr())
	src := etcd.New(etcd.Config{Client: client(b, srv.addr())})
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := src.Watch(ctx, 0)
	if r := <-ch; !r.Reset {
		b.Fatalf("first response %+v is not a Reset", r)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		data := []byte("app: bench\nversion: v" + strconv.Itoa(i) + "\n")
		start := time.Now()
		if _, err := console.Put(ctx, etcd.DefaultPrefix+"bench", string(data)); err != nil {
			b.Fatal(err)
		}
	wait:
		for {
			select {
			case r := <-ch:
				if r.Err != nil {
					b.Fatalf("watch error: %v", r.Err)
				}
				for _, ev := range r.Events {
					if ev.Entry.App == "bench" && bytes.Equal(ev.Entry.Data, data) {
						break wait
					}
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("edit %d not delivered within 10s", i)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
