package proxy

import (
	"net/http"
	"testing"

	"github.com/graylane/graylane/traffic"
)

func benchTable() *Proxy {
	p := New(Config{App: "bench"})
	p.SetEndpoints("v1", []string{"127.0.0.1:1001", "127.0.0.1:1002"})
	p.SetEndpoints("v2", []string{"127.0.0.1:2001"})
	p.SetSplit(traffic.Split{Weights: []traffic.VersionWeight{{Version: "v3", Weight: 10}, {Version: "v2", Weight: 20}, {Version: "v1", Weight: 70}}})
	return p
}

// TestRouteAllocations: routing a request (header, cookie or random) and
// picking its endpoint allocate nothing.
func TestRouteAllocations(t *testing.T) {
	p := benchTable()
	for name, h := range map[string]http.Header{
		"random": {},
		"header": {DefaultStickyHeader: {"user-7"}},
		"cookie": {"Cookie": {"a=1; gray_user=user-7; b=2"}},
		"pinned": {VersionHeader: {"v2"}},
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			t := p.table.Load()
			if t.pick(t.route(h, "10.1.2.3:4567"), nil, false) == nil {
				panic("no endpoint")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per routed request, want 0", name, allocs)
		}
	}
}

// BenchmarkRoute measures the routing decision alone.
func BenchmarkRoute(b *testing.B) {
	p := benchTable()
	h := http.Header{"Cookie": {"a=1; gray_user=user-7; b=2"}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := p.table.Load()
			t.pick(t.route(h, "10.1.2.3:4567"), nil, false)
		}
	})
}
