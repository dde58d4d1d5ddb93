package nginx_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/nginx"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// BenchmarkRender measures rendering one app's file (pure, no nginx).
func BenchmarkRender(b *testing.B) {
	var list []adapters.Instance
	for i := range 20 {
		v := "v1"
		if i%4 == 0 {
			v = "v2"
		}
		list = append(list, adapters.Instance{ID: fmt.Sprint(i), Version: v, Addr: fmt.Sprintf("10.0.0.%d:8080", i+1), Ready: true})
	}
	in := nginx.Input{App: "demo", Split: weights("v2", "v2", 25, "v1", 75), Instances: list, StatusAddr: "127.0.0.1:18081"}
	for b.Loop() {
		if _, err := nginx.Render(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetWeights measures one full weight change against a real nginx:
// render, write, `nginx -t`, SIGHUP, and polling until a fresh connection
// gets the new file's digest. ns/op is the reload time as graylane sees it.
func BenchmarkSetWeights(b *testing.B) {
	testenv.IntegrationTest(b)
	f := newFixture(b, true)
	ctx := context.Background()
	splits := []traffic.Split{weights("", "v2", 10, "v1", 90), weights("", "v2", 20, "v1", 80)}
	if err := f.router.SetWeights(ctx, f.rel, splits[1]); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if err := f.router.SetWeights(ctx, f.rel, splits[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSetWeightsUnderLoad changes weights while 8 clients send
// requests through nginx, and reports the requests served per reload and
// any that failed.
func BenchmarkSetWeightsUnderLoad(b *testing.B) {
	testenv.IntegrationTest(b)
	f := newFixture(b, true)
	ctx := context.Background()
	splits := []traffic.Split{weights("", "v2", 10, "v1", 90), weights("", "v2", 20, "v1", 80)}
	if err := f.router.SetWeights(ctx, f.rel, splits[1]); err != nil {
		b.Fatal(err)
	}
	l := startLoad(b, "http://"+f.listen+"/", 8)
	ok0, failed0, _ := l.Totals()
	i := 0
	for b.Loop() {
		if err := f.router.SetWeights(ctx, f.rel, splits[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	res := l.Stop()
	served := res.OK + res.Failed - ok0 - failed0
	b.ReportMetric(float64(served)/float64(b.N), "req/reload")
	b.ReportMetric(float64(res.Failed), "failed")
	if res.Failed != 0 {
		b.Fatalf("%d requests failed, e.g. %v", res.Failed, res.Errors)
	}
}
