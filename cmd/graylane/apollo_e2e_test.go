package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// apolloFixture is the protocol-faithful Apollo test server set up the way
// docs/apollo.md describes: app "graylane", properties namespace
// "graylane-releases" (one item per app), and an Open API token granted on
// it.
type apolloFixture struct {
	srv *apolloserver.Server
	ns  string
}

func newApollo(t *testing.T) *apolloFixture {
	t.Helper()
	srv := apolloserver.New(apolloserver.Options{LongPollTimeout: 10 * time.Second})
	if err := srv.Start(); err != nil {
		testenv.Unavailable(t, "apollo test server: %v", err)
	}
	t.Cleanup(srv.Close)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(srv.CreateApp("graylane", ""))
	ns, err := srv.CreateNamespace("graylane", "graylane-releases", "properties")
	must(err)
	must(srv.CreateToken("e2e-token"))
	must(srv.GrantNamespace("e2e-token", "graylane", ns, ""))
	return &apolloFixture{srv: srv, ns: ns}
}

// release edits an app's item and presses Release, as an operator in the
// Apollo portal would.
func (a *apolloFixture) release(t *testing.T, app, doc string) {
	t.Helper()
	if err := a.srv.SetItem("graylane", "default", a.ns, app, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := a.srv.Publish("graylane", "default", a.ns, "portal edit of "+app); err != nil {
		t.Fatal(err)
	}
}

func (a *apolloFixture) config() map[string]any {
	return map[string]any{
		"source": map[string]any{"type": "apollo"},
		"apollo": map[string]any{
			"configService": a.srv.URL(), "portal": a.srv.PortalURL(), "token": "e2e-token",
			"appId": "graylane", "namespace": a.ns, "env": "DEV", "operator": "apollo",
			"probeInterval": "1s", "startupGrace": "1s",
		},
	}
}

func TestEndToEndApolloSource(t *testing.T) {
	testenv.IntegrationTest(t)
	a := newApollo(t)
	proxy := testenv.FreePort(t)
	steps := `  type: canary
  steps:
    - setWeight: 50
    - pause: {duration: 4s}
    - setWeight: 100
  scaleDownDelay: 1s
  progressDeadline: 1m
  autoRollback: true`
	a.release(t, "shop", releaseDoc("shop", "v1", proxy, steps))
	g := graylanetest.Start(t, graylanetest.Options{Config: a.config()})
	waitFor(t, g, "shop", 60*time.Second, "v1 healthy from Apollo", healthyAt("v1"))

	// an edit of the version item in the portal, then Release, rolls out
	a.release(t, "shop", releaseDoc("shop", "v2", proxy, steps))
	waitFor(t, g, "shop", 60*time.Second, "v2 canary at its pause", func(v engine.AppView) bool {
		return v.Status.CanaryVersion == "v2" && v.Status.Step == 1
	})
	// Apollo goes down mid-rollout: the release neither advances past the
	// pause on stale data nor rolls back
	a.srv.Stop()
	down := waitFor(t, g, "shop", 30*time.Second, "outage noticed", func(v engine.AppView) bool { return !v.Status.Source.Ready })
	held := heldPastPause(t, g, "shop", down, 4*time.Second) // the pause must not complete while Apollo is down
	if held.Status.Step != down.Status.Step || held.Status.Phase == rollout.RolledBack || held.Status.StableVersion != "v1" {
		t.Fatalf("release moved while Apollo was down: before %+v after %+v", down.Status.Status, held.Status.Status)
	}
	if err := a.srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "shop", 60*time.Second, "v2 healthy after Apollo came back", healthyAt("v2"))

	// setting a version through graylane's API creates an Apollo release
	// whose history names the app and version
	if err := g.Client().SetVersion(context.Background(), "shop", "v3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "shop", 60*time.Second, "v3 healthy", healthyAt("v3"))
	found := false
	for _, r := range a.srv.Releases("graylane", "default", a.ns) {
		if strings.Contains(r.Name, "shop") && strings.Contains(r.Name, "v3") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no Apollo release names shop v3: %+v", a.srv.Releases("graylane", "default", a.ns))
	}

	// invalid content released in the portal: last good spec kept, error shown
	a.release(t, "shop", strings.Replace(releaseDoc("shop", "v4", proxy, steps), "setWeight: 50", "setWeight: 500", 1))
	v := waitFor(t, g, "shop", 30*time.Second, "spec error shown", func(v engine.AppView) bool { return v.Status.SpecError != nil })
	if v.Status.SpecError.Field != "strategy.steps[0].setWeight" || v.Spec.Version != "v3" || v.Status.Phase != rollout.Healthy {
		t.Fatalf("invalid release: error %+v, spec %s, phase %s", v.Status.SpecError, v.Spec.Version, v.Status.Phase)
	}
}

func TestEndToEndApolloDownAtStartUsesCache(t *testing.T) {
	testenv.IntegrationTest(t)
	a := newApollo(t)
	proxy := testenv.FreePort(t)
	a.release(t, "cache", releaseDoc("cache", "v1", proxy, rollingSteps))
	g := graylanetest.Start(t, graylanetest.Options{Config: a.config()})
	waitFor(t, g, "cache", 60*time.Second, "v1 healthy", healthyAt("v1"))
	g.Kill()
	a.srv.Stop()
	// graylane must start with Apollo down, from its last-known-good cache
	g.RestartAlive()
	v := waitFor(t, g, "cache", 30*time.Second, "app served from cache, instances adopted", func(v engine.AppView) bool {
		ready := 0
		for _, in := range v.Status.Instances {
			if in.Ready && in.Version == "v1" {
				ready++
			}
		}
		return v.Spec != nil && v.Spec.Version == "v1" && !v.Status.Source.Ready && ready == 4
	})
	if v.Status.Source.Name != "apollo" || v.Status.Source.Error == "" {
		t.Fatalf("status does not say Apollo is unavailable: %+v", v.Status.Source)
	}
	resp, err := http.Get(g.APIURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "last-known-good cache") {
		t.Fatalf("/readyz = %d %s, want 503 naming the cache", resp.StatusCode, body)
	}
	// the instances kept running and were adopted, not started again
	for id, n := range g.Starts("cache") {
		if n != 1 {
			t.Errorf("slot %s started %d times", id, n)
		}
	}
	// and once Apollo is back, the source is ready again
	if err := a.srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "cache", 30*time.Second, "source ready after Apollo is back", func(v engine.AppView) bool { return v.Status.Source.Ready })
}
