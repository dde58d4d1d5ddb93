package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/traffic"
)

// A backend registers ready endpoints per version; the split decides who
// gets which. A sticky user's bucket (0..9999, docs/gray.md, the same in
// nginx and the SDK) below the canary's weight*100 puts them on the canary,
// where they stay as the weight grows.
func Example() {
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "v1") }))
	defer stable.Close()
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "v2") }))
	defer canary.Close()

	p := proxy.New(proxy.Config{App: "demo"})
	p.SetEndpoints("v1", []string{stable.Listener.Addr().String()})
	p.SetEndpoints("v2", []string{canary.Listener.Addr().String()})

	for _, canaryWeight := range []int{10, 50} {
		p.SetSplit(traffic.Split{Weights: []traffic.VersionWeight{
			{Version: "v2", Weight: canaryWeight},
			{Version: "v1", Weight: 100 - canaryWeight},
		}})
		for _, user := range []string{"user-1", "bob", "alice"} {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set(proxy.DefaultStickyHeader, user)
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, req)
			fmt.Printf("canary at %d%%: %s (bucket %d) -> %s\n", canaryWeight, user, proxy.Bucket(user), rec.Body)
		}
	}
	// Output:
	// canary at 10%: user-1 (bucket 4109) -> v1
	// canary at 10%: bob (bucket 6595) -> v1
	// canary at 10%: alice (bucket 134) -> v2
	// canary at 50%: user-1 (bucket 4109) -> v2
	// canary at 50%: bob (bucket 6595) -> v1
	// canary at 50%: alice (bucket 134) -> v2
}
