package proxy_test

import (
	"net/http"
	"testing"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/testsupport/grayvectors"
	"github.com/graylane/graylane/traffic"
)

// TestRouteVectors: the proxy routes every route vector of
// docs/gray-vectors.json (user key from the header or the cookie, salt,
// split) to its version, as nginx's Lua, the SDK and the Java class do.
func TestRouteVectors(t *testing.T) {
	v := grayvectors.Load(t)
	ups := map[string]string{}
	for _, ver := range []string{"v1", "v2", "v3"} {
		ups[ver] = newUpstream(t, ver).addr()
	}
	for i, vec := range v.RouteVectors {
		p := proxy.New(proxy.Config{App: "vec", Settings: proxy.Settings{Salt: vec.Salt}})
		eps := proxy.Endpoints{}
		for _, w := range vec.Split {
			eps[w.Version] = []string{ups[w.Version]}
		}
		p.ReplaceEndpoints(eps)
		mustSplit(t, p, traffic.Split{Weights: vec.Split})
		h := http.Header{}
		if vec.Header != nil {
			h[proxy.DefaultStickyHeader] = []string{*vec.Header}
		}
		if vec.Cookie != nil {
			h["Cookie"] = []string{*vec.Cookie}
		}
		if got := versionOf(t, p, h); got != vec.Version {
			t.Errorf("route vector %d (key %q, bucket %d, split %v): proxy chose %s, want %s", i, vec.Key, vec.Bucket, vec.Split, got, vec.Version)
		}
	}
}
