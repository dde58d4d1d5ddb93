package grayrouter_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// Gray documents published to Apollo (gray.centre: apollo) land as one item
// per app in the graylane-gray properties namespace, released, so gateways
// reading Apollo see them; every step publishes a new release.
func TestPublishesToApollo(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := apolloserver.New(apolloserver.Options{LongPollTimeout: 5 * time.Second})
	if err := srv.Start(); err != nil {
		testenv.Unavailable(t, "apollo test server: %v", err)
	}
	t.Cleanup(srv.Close)
	sdktest.Must(t, "app", srv.CreateApp("graylane", ""))
	ns, err := srv.CreateNamespace("graylane", "graylane-gray", "properties")
	sdktest.Must(t, "namespace", err)
	sdktest.Must(t, "token", srv.CreateToken("gray-token"))
	sdktest.Must(t, "grant", srv.GrantNamespace("gray-token", "graylane", ns, ""))
	docs, err := apollo.NewDocuments(apollo.DocumentsConfig{Portal: srv.PortalURL(), Token: "gray-token", ConfigService: srv.URL()})
	sdktest.Must(t, "documents", err)
	store := grayrouter.DocumentsStore(docs, func(app string) configsync.Location {
		return configsync.Location{AppID: "graylane", Cluster: "default", Namespace: ns, Key: app}
	})
	router, err := grayrouter.New(grayrouter.Config{Store: store, Centre: "apollo"})
	sdktest.Must(t, "router", err)
	ctx := sdktest.Ctx(t, time.Minute)
	rel, err := spec.Parse([]byte(withRules))
	sdktest.Must(t, "parse", err)

	for i, s := range []struct {
		split  string
		weight int
	}{{"v1", 0}, {"v2:20", 20}, {"v2:50", 50}} {
		sp := split(vw("v1", 100))
		if s.weight > 0 {
			sp = split(vw("v2", s.weight), vw("v1", 100-s.weight))
		}
		sdktest.Must(t, "set weights", router.SetWeights(ctx, rel, sp))
		// what an Apollo client sees: the released item
		r, ok := srv.LatestRelease("graylane", "default", ns)
		if !ok {
			t.Fatal("nothing released")
		}
		d, err := gray.Parse([]byte(r.Configurations["shop"]))
		if err != nil {
			t.Fatalf("step %d: released item is not a gray document: %v\n%s", i, err, r.Configurations["shop"])
		}
		if got := d.SplitOf().Map()["v2"]; got != s.weight {
			t.Fatalf("step %d: published v2 weight %d, want %d", i, got, s.weight)
		}
		var raw map[string]any
		if json.Unmarshal([]byte(r.Configurations["shop"]), &raw) != nil || raw["schema"] != "graylane.gray/v1" {
			t.Fatalf("step %d: not the documented JSON format", i)
		}
	}
	if n := len(srv.Releases("graylane", "default", ns)); n != 3 {
		t.Fatalf("%d releases, want one per step (3)", n)
	}
	back, err := router.Weights(ctx, "shop")
	sdktest.Must(t, "weights", err)
	if back.Map()["v2"] != 50 {
		t.Fatalf("read back %v", back)
	}
}
