package configrelease_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// apolloRead reads namespace app.yaml of app demo as an Apollo client
// presenting label does.
func apolloRead(t *testing.T, srv *apolloserver.Server, label string) string {
	t.Helper()
	resp, err := http.Get(srv.URL() + "configs/demo/default/app.yaml?" + url.Values{"label": {label}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dto struct {
		Configurations map[string]string `json:"configurations"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dto); err != nil {
		t.Fatal(err)
	}
	return dto.Configurations["content"]
}

// TestApolloAndEtcdInStep runs a canary, a promotion and a rollback with
// targets on etcd and on Apollo, where the version-bound copy is a gray
// branch selected by the client label (= the release identity).
func TestApolloAndEtcdInStep(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t)
	srv := apolloserver.New(apolloserver.Options{})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	for _, err := range []error{srv.CreateApp("demo", ""), srv.CreateToken("tok"), srv.GrantApp("tok", "demo")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.CreateNamespace("demo", "app", apolloserver.FormatYAML); err != nil {
		t.Fatal(err)
	}
	ad, err := apollo.NewDocuments(apollo.DocumentsConfig{Portal: srv.PortalURL(), Token: "tok", ConfigService: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := configrelease.New(configrelease.Config{Store: f.store, Centres: []configsync.Documents{f.centre, ad}, Clock: clock.Func(f.clock), ReadBackTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	targets := "    - apollo: {namespace: \"{{.File}}\"}\n"
	pass := func(rel *spec.Release, st rollout.Status) *rollout.ConfigGate {
		t.Helper()
		f.advance(time.Second)
		id, err := m.Prepare(ctx(t), rel)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: rel, Identity: id, Status: st})
		if err != nil {
			t.Fatal(err)
		}
		return res.Gate
	}
	check := func(label, want string) {
		t.Helper()
		if got := apolloRead(t, srv, label); got != want {
			t.Fatalf("apollo client labelled %q reads %q, want %q", label, got, want)
		}
	}
	v1, v2 := release(t, "v1", "one", targets), release(t, "v2", "two", targets)
	pass(v1, rollout.Status{})
	check("", "greeting: one\n")
	g := pass(v2, rollout.Status{StableVersion: "v1", CanaryVersion: "v2"})
	if !g.Placed["v2"] {
		t.Fatalf("gate %v (%s)", g, g.Waiting)
	}
	check("v2", "greeting: two\n")
	check("v1", "greeting: one\n")
	if got, _ := f.get("/config/demo/app.yaml@v2"); got != "greeting: two\n" {
		t.Fatalf("etcd copy %q", got)
	}
	pass(v2, rollout.Status{StableVersion: "v2", PreviousVersion: "v1"})
	check("", "greeting: two\n")
	check("v1", "greeting: two\n")
	if _, ok := srv.Branch("demo", "default", "app.yaml"); ok {
		t.Fatal("the gray branch outlived the promotion")
	}
	// rollback: v2 pinned on the branch, v1's config back on master
	g = pass(v2, rollout.Status{StableVersion: "v2", CanaryVersion: "v1", Rollback: true})
	if !g.Placed["v1"] || !g.Placed["v2"] {
		t.Fatalf("rollback gate %v (%s)", g, g.Waiting)
	}
	check("v2", "greeting: two\n")
	check("v1", "greeting: one\n")
	check("", "greeting: one\n")
	pass(v2, rollout.Status{StableVersion: "v1", PreviousVersion: "v2"})
	check("v2", "greeting: one\n")
	if _, ok := srv.Branch("demo", "default", "app.yaml"); ok {
		t.Fatal("the pinned branch outlived the rollback")
	}
}
