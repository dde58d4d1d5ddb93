package apollo

import (
	"slices"
	"testing"

	agolloutils "github.com/apolloconfig/agollo/v4/utils"

	"github.com/graylane/graylane/configsync/apollo/openapi"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// clientIP is the address the config service sees for agollo (and the
// probe): the host's non-loopback IPv4 agollo sends, or the loopback
// address it connects from when it sends none.
func clientIP() string {
	if ip := agolloutils.GetInternal(); ip != "" {
		return ip
	}
	return "127.0.0.1"
}

// The gray branch client, checked with two agollo-based Sources that differ
// only by Label: a branch with a label rule reaches only the labelled one,
// an IP rule reaches both, merging makes the branch everyone's and
// abandoning it sends its clients back to master.
func TestGrayBranchReachesOnlyLabelledClient(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv := newServer(t, apolloserver.Options{})
	setupNamespace(t, srv)
	v1, v2, v3 := doc("demo", "v1"), doc("demo", "v2"), doc("demo", "v3")
	publishDoc(t, srv, "demo", v1)
	publishDoc(t, srv, "other", doc("other", "v1"))

	canaryCfg := testConfig(t, srv)
	canaryCfg.ConfigService, canaryCfg.Label = viaProxy(t, srv), "canary"
	stableCfg := testConfig(t, srv)
	stableCfg.ConfigService = viaProxy(t, srv)
	canary, stable := newSource(t, canaryCfg), newSource(t, stableCfg)
	ctx := ctxT(t)
	cw := sourcetest.Collect(t, canary.Watch(ctx, 0))
	sw := sourcetest.Collect(t, stable.Watch(ctx, 0))
	cw.WaitData(t, "demo", v1, within)
	sw.WaitData(t, "demo", v1, within)

	api, ns := canary.OpenAPI(), canary.Namespace()
	branch, err := api.CreateBranch(ctx, ns)
	must(t, err)
	if b, ok, err := api.Branch(ctx, ns); err != nil || !ok || b.Cluster != branch {
		t.Fatalf("Branch = %+v, %v, %v; want %s", b, ok, err, branch)
	}
	labelRule := openapi.GrayRule{ClientAppID: testAppID, ClientLabelList: []string{"canary"}}
	must(t, api.SetGrayRules(ctx, ns, branch, labelRule))
	rules, ok, err := api.GrayRules(ctx, ns, branch)
	if err != nil || !ok || len(rules) != 1 || !slices.Equal(rules[0].ClientLabelList, []string{"canary"}) || rules[0].ClientIPList == nil || len(rules[0].ClientIPList) != 0 {
		t.Fatalf("GrayRules = %+v, %v, %v", rules, ok, err)
	}
	must(t, api.UpdateItem(ctx, ns.Branch(branch), openapi.Item{Key: "demo", Value: string(v2)}, true))
	if _, err := api.GrayPublish(ctx, ns, branch, openapi.ReleaseRequest{Title: "graylane: demo v2 (gray)"}); err != nil {
		t.Fatal(err)
	}
	cw.WaitData(t, "demo", v2, within)
	quiet(t, srv, within, watched{canary, cw}, watched{stable, sw}) // both read the gray release: the stable client must not have followed
	if got := sw.Data("demo"); !slices.Equal(got, []string{string(v1)}) {
		t.Fatalf("stable client saw %q, want only v1", got)
	}
	if e, _ := stable.Get(ctx, "demo"); string(e.Data) != string(v1) {
		t.Fatalf("stable Get = %q", e.Data)
	}
	if got := cw.Data("other"); len(got) != 1 {
		t.Fatalf("canary: other delivered %q; the gray release inherits master's keys unchanged", got)
	}

	// An IP rule selects both (they run on one host).
	must(t, api.SetGrayRules(ctx, ns, branch, labelRule, openapi.GrayRule{ClientIPList: []string{clientIP()}}))
	sw.WaitData(t, "demo", v2, within)
	// Back to the label only: the stable client returns to master.
	must(t, api.SetGrayRules(ctx, ns, branch, labelRule))
	sw.WaitData(t, "demo", v1, within)

	// Merge: master gets v2, the branch is gone.
	if _, err := api.Merge(ctx, ns, branch, openapi.ReleaseRequest{Title: "graylane: demo v2"}, true); err != nil {
		t.Fatal(err)
	}
	sw.WaitData(t, "demo", v2, within)
	if _, ok, err := api.Branch(ctx, ns); ok || err != nil {
		t.Fatalf("branch still there after merge with deleteBranch (%v)", err)
	}
	if v, _ := released(srv, "demo"); v != string(v2) {
		t.Fatalf("master demo = %q after merge", v)
	}

	// Abandon: a v3 branch for the canary, then deleted.
	branch2, err := api.CreateBranch(ctx, ns)
	must(t, err)
	must(t, api.SetGrayRules(ctx, ns, branch2, labelRule))
	must(t, api.UpdateItem(ctx, ns.Branch(branch2), openapi.Item{Key: "demo", Value: string(v3)}, true))
	if _, err := api.GrayPublish(ctx, ns, branch2, openapi.ReleaseRequest{Title: "graylane: demo v3 (gray)"}); err != nil {
		t.Fatal(err)
	}
	cw.WaitData(t, "demo", v3, within)
	must(t, api.DeleteBranch(ctx, ns, branch2))
	cw.WaitData(t, "demo", v2, within)
	quiet(t, srv, within, watched{canary, cw}, watched{stable, sw})
	if got := sw.Data("demo"); !slices.Equal(got, []string{string(v1), string(v2), string(v1), string(v2)}) {
		t.Fatalf("stable client saw %q", got)
	}
	if got := cw.Data("demo"); !slices.Equal(got, []string{string(v1), string(v2), string(v3), string(v2)}) {
		t.Fatalf("canary client saw %q", got)
	}
}
