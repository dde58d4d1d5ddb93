package nginx_test

import (
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestConformance runs the shared TrafficRouter suite against a real nginx
// with v1 and v2 instances ready and v3 known but never ready.
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	adaptertest.RunRouter(t, func(t *testing.T) *adaptertest.RouterHarness {
		f := newFixture(t, true)
		list, _ := f.src.Observe(t.Context(), "demo")
		f.src.set(append(list, adapters.Instance{ID: "demo-v3-0", Version: "v3", Addr: "127.0.0.1:9", Ready: false, Message: "starting"}))
		return &adaptertest.RouterHarness{
			Router: f.router,
			Release: func(v string) *spec.Release {
				r := f.rel.Clone()
				r.Version = v
				return r
			},
			Versions: []string{"v1", "v2"},
			Unready:  "v3",
			Probe:    adaptertest.HTTPProbe("http://" + f.listen + "/"),
		}
	})
}
