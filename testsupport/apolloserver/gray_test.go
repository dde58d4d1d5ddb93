package apolloserver

import (
	"net/url"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

func canary() url.Values { return url.Values{"label": {"canary"}, "ip": {"10.0.0.1"}} }

func TestGrayReleaseLifecycle(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{LongPollTimeout: 30 * time.Second})
	master := publish(t, s, "app", "default", "application", "m1", "k1", "m1", "k2", "m2")

	// Create the branch: its name comes back in clusterName.
	r := api(t, s, "POST", P+"/branches?operator=apollo", "tok", nil)
	var br struct{ AppID, ClusterName, NamespaceName string }
	r.json(t, &br)
	branch := br.ClusterName
	if r.status != 200 || !releaseKeyRE.MatchString(branch) || br.NamespaceName != "application" {
		t.Fatalf("create branch: %d %s", r.status, r.body)
	}
	expectError(t, api(t, s, "POST", P+"/branches?operator=apollo", "tok", nil), 400, "400.0", "namespace already has branch")
	r = api(t, s, "GET", P+"/branches", "tok", nil)
	r.json(t, &br)
	if r.status != 200 || br.ClusterName != branch {
		t.Fatalf("get branch: %d %s", r.status, r.body)
	}
	if r := api(t, s, "GET", P+"/branches/"+branch+"/rules", "tok", nil); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("rules before any: %d %s", r.status, r.body)
	}
	expectError(t, api(t, s, "GET", P+"/branches/nope/rules", "tok", nil), 400, "400.0",
		"Namespace's branch not exist. AppId = app, ClusterName = default, NamespaceName = application, BranchName = nope")

	// Branch items go through the item API with {cluster} = branch.
	bp := "/envs/DEV/apps/app/clusters/" + branch + "/namespaces/application"
	if r := api(t, s, "POST", bp+"/items", "tok", map[string]string{"key": "k1", "value": "g1", "dataChangeCreatedBy": "apollo"}); r.status != 200 {
		t.Fatalf("branch item: %d %s", r.status, r.body)
	}

	// Rules: appId matched ignoring case, label list.
	parentID := s.NotificationID("app", "default", "application")
	ch := asyncPoll(s, "app", "default", "application", parentID)
	waitHeld(t, s, 1)
	rules := map[string]any{"ruleItems": []map[string]any{{"clientAppId": "APP", "clientIpList": []string{}, "clientLabelList": []string{"canary"}}}}
	if r := api(t, s, "PUT", P+"/branches/"+branch+"/rules?operator=apollo", "tok", rules); r.status != 200 {
		t.Fatalf("put rules: %d %s", r.status, r.body)
	}
	if res := recv(t, ch, 5*time.Second); res.status != 200 || res.n[0].Messages.Details["app+default+application"] == 0 {
		t.Fatalf("rule change must notify the parent key: %+v", res)
	}
	r = api(t, s, "GET", P+"/branches/"+branch+"/rules", "tok", nil)
	var got struct {
		BranchName string
		RuleItems  []GrayRuleItem
	}
	r.json(t, &got)
	if got.BranchName != branch || len(got.RuleItems) != 1 || got.RuleItems[0].ClientLabelList[0] != "canary" {
		t.Fatalf("get rules: %s", r.body)
	}
	// No gray release yet: rules are not in effect.
	if _, c := getConfig(t, s, "app", "default", "application", canary()); c.ReleaseKey != master.ReleaseKey {
		t.Fatalf("rules without a gray release must not apply: %+v", c)
	}

	// Gray publish notifies the parent key; the canary gets master + branch items.
	parentID = s.NotificationID("app", "default", "application")
	ch = asyncPoll(s, "app", "default", "application", parentID)
	waitHeld(t, s, 1)
	r = api(t, s, "POST", P+"/branches/"+branch+"/releases", "tok", releaseBody("gray 1", "apollo"))
	var gray openRelease
	r.json(t, &gray)
	if r.status != 200 || gray.ClusterName != branch || gray.Configurations["k1"] != "g1" || gray.Configurations["k2"] != "m2" {
		t.Fatalf("gray publish: %d %s", r.status, r.body)
	}
	if res := recv(t, ch, 5*time.Second); res.status != 200 || res.n[0].Messages.Details["app+default+application"] <= parentID {
		t.Fatalf("gray publish must notify the parent key: %+v", res)
	}
	_, c := getConfig(t, s, "app", "default", "application", canary())
	grayKey := c.ReleaseKey
	if c.Configurations["k1"] != "g1" || c.Configurations["k2"] != "m2" || c.Cluster != branch || grayKey == master.ReleaseKey {
		t.Fatalf("canary: %+v", c)
	}
	for _, q := range []url.Values{nil, {"label": {"stable"}}, {"label": {""}}} {
		if _, c := getConfig(t, s, "app", "default", "application", q); c.ReleaseKey != master.ReleaseKey || c.Configurations["k1"] != "m1" {
			t.Fatalf("non-canary %v: %+v", q, c)
		}
	}
	if r := get(t, s.URL()+"configfiles/json/app/default/application?label=canary"); string(r.body) != `{"k1":"g1","k2":"m2"}` {
		t.Fatalf("configfiles for the canary: %s", r.body)
	}

	// A master publish republishes the active branch, keeping its keys.
	masterB := publish(t, s, "app", "default", "application", "m2", "k1", "m1b", "k2", "m2b")
	_, c = getConfig(t, s, "app", "default", "application", canary())
	if c.Configurations["k1"] != "g1" || c.Configurations["k2"] != "m2b" || c.ReleaseKey == grayKey {
		t.Fatalf("canary after master publish: %+v", c)
	}
	if brs := s.Releases("app", branch, "application"); len(brs) != 2 || brs[0].Name != "m2" {
		t.Fatalf("branch releases: %+v", brs)
	}
	if _, c := getConfig(t, s, "app", "default", "application", nil); c.ReleaseKey != masterB.ReleaseKey || c.Configurations["k1"] != "m1b" {
		t.Fatalf("master clients: %+v", c)
	}

	// Gray deletion: drop k2 for the canary only.
	dr := releaseBody("gray del", "apollo")
	expectError(t, api(t, s, "POST", P+"/branches/"+branch+"/gray-del-releases", "tok", dr), 400, "400", "Params(grayDelKeys) can not be null")
	dr["grayDelKeys"] = []string{"k2"}
	if r := api(t, s, "POST", P+"/branches/"+branch+"/gray-del-releases", "tok", dr); r.status != 200 {
		t.Fatalf("gray-del: %d %s", r.status, r.body)
	}
	if _, c := getConfig(t, s, "app", "default", "application", canary()); c.Configurations["k1"] != "g1" || c.Configurations["k2"] != "" {
		t.Fatalf("after gray-del: %+v", c)
	}

	// Merge into master and delete the branch.
	r = api(t, s, "POST", P+"/branches/"+branch+"/merge?deleteBranch=true", "tok", releaseBody("merge", "apollo"))
	var merged openRelease
	r.json(t, &merged)
	if r.status != 200 || merged.ClusterName != "default" || merged.Configurations["k1"] != "g1" || merged.Configurations["k2"] != "m2b" {
		t.Fatalf("merge: %d %s", r.status, r.body)
	}
	for _, q := range []url.Values{nil, canary()} {
		if _, c := getConfig(t, s, "app", "default", "application", q); c.Cluster != "default" || c.Configurations["k1"] != "g1" {
			t.Fatalf("after merge %v: %+v", q, c)
		}
	}
	if r := api(t, s, "GET", P+"/branches", "tok", nil); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("branch after merge: %d %s", r.status, r.body)
	}
	var ops []int
	for _, h := range s.ReleaseHistory("app", "default", "application") {
		ops = append([]int{h.Operation}, ops...)
	}
	want := []int{OpNormalRelease, OpApplyGrayRules, OpGrayRelease, OpNormalRelease, OpMasterNormalReleaseMergeGray, OpGrayRelease, OpGrayReleaseMergeToMaster, OpGrayReleaseDeletedAfterMerge}
	if len(ops) != len(want) {
		t.Fatalf("history ops %v, want %v", ops, want)
	}
	for i := range want {
		if ops[i] != want[i] {
			t.Fatalf("history ops %v, want %v", ops, want)
		}
	}
}

func TestGrayByIPAndBranchDeletion(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{LongPollTimeout: 30 * time.Second})
	master := publish(t, s, "app", "default", "application", "m", "k", "master")
	branch, err := s.CreateBranch("app", "default", "application")
	must(t, err)
	must(t, s.SetItem("app", branch, "application", "k", "gray"))
	// With no ip parameter Apollo uses the caller's address.
	must(t, s.SetGrayRules("app", "default", "application", branch, GrayRuleItem{ClientAppID: "app", ClientIPList: []string{"127.0.0.1"}}))
	publish(t, s, "app", branch, "application", "g")

	if _, c := getConfig(t, s, "app", "default", "application", nil); c.Configurations["k"] != "gray" {
		t.Fatalf("remote address 127.0.0.1: %+v", c)
	}
	if _, c := getConfig(t, s, "app", "default", "application", url.Values{"ip": {"10.1.1.1"}}); c.Configurations["k"] != "master" {
		t.Fatalf("ip 10.1.1.1: %+v", c)
	}
	must(t, s.SetGrayRules("app", "default", "application", branch, GrayRuleItem{ClientAppID: "app", ClientIPList: []string{"*"}}))
	if _, c := getConfig(t, s, "app", "default", "application", url.Values{"ip": {"10.1.1.1"}}); c.Configurations["k"] != "gray" {
		t.Fatalf("ip wildcard: %+v", c)
	}
	must(t, s.SetGrayRules("app", "default", "application", branch, GrayRuleItem{ClientAppID: "someone-else", ClientIPList: []string{"*"}}))
	if _, c := getConfig(t, s, "app", "default", "application", nil); c.Configurations["k"] != "master" {
		t.Fatalf("rule for another appId: %+v", c)
	}
	must(t, s.SetGrayRules("app", "default", "application", branch, GrayRuleItem{ClientAppID: "app", ClientLabelList: []string{"*"}}))

	id := s.NotificationID("app", "default", "application")
	ch := asyncPoll(s, "app", "default", "application", id)
	waitHeld(t, s, 1)
	expectError(t, api(t, s, "DELETE", P+"/branches/"+branch+"?operator=bob", "tok", nil), 400, "400", "user not exists for userName:bob")
	if r := api(t, s, "DELETE", P+"/branches/"+branch+"?operator=apollo", "tok", nil); r.status != 200 {
		t.Fatalf("delete branch: %d %s", r.status, r.body)
	}
	if res := recv(t, ch, 5*time.Second); res.status != 200 || res.n[0].NotificationID <= id {
		t.Fatalf("branch deletion must notify the parent key: %+v", res)
	}
	if _, c := getConfig(t, s, "app", "default", "application", url.Values{"label": {"x"}}); c.ReleaseKey != master.ReleaseKey {
		t.Fatalf("after deletion: %+v", c)
	}
	if _, ok := s.Branch("app", "default", "application"); ok {
		t.Fatal("branch still listed")
	}
	// A new branch may be created afterwards.
	if _, err := s.CreateBranch("app", "default", "application"); err != nil {
		t.Fatal(err)
	}
}

func TestMergeRefusedWhileMasterHasUnpublishedChanges(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{})
	publish(t, s, "app", "default", "application", "m", "k", "v")
	branch, err := s.CreateBranch("app", "default", "application")
	must(t, err)
	must(t, s.SetItem("app", "default", "application", "k", "dirty"))
	expectError(t, api(t, s, "POST", P+"/branches/"+branch+"/merge", "tok", releaseBody("merge", "apollo")), 400, "400",
		"Merge operation failed. Because master has modified items")
}

// Apollo quirk kept on purpose: a master publish while a branch exists
// creates a branch release even if the branch was never gray-published, and
// that release (master's config) puts the rules into effect.
func TestMasterPublishReleasesANeverPublishedBranch(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{})
	publish(t, s, "app", "default", "application", "m1", "k", "v1")
	branch, err := s.CreateBranch("app", "default", "application")
	must(t, err)
	must(t, s.SetGrayRules("app", "default", "application", branch, GrayRuleItem{ClientAppID: "app", ClientLabelList: []string{"canary"}}))
	if _, c := getConfig(t, s, "app", "default", "application", canary()); c.Cluster != "default" {
		t.Fatalf("before: %+v", c)
	}
	publish(t, s, "app", "default", "application", "m2", "k", "v2")
	_, c := getConfig(t, s, "app", "default", "application", canary())
	if c.Cluster != branch || c.Configurations["k"] != "v2" {
		t.Fatalf("after master publish: %+v", c)
	}
}

func TestRuleMatching(t *testing.T) {
	l := func(s string) *string { return &s }
	items := []GrayRuleItem{{ClientAppID: "App", ClientIPList: []string{"1.1.1.1"}, ClientLabelList: []string{"blue"}}}
	cases := []struct {
		c    client
		want bool
	}{
		{client{"app", "1.1.1.1", nil}, true},
		{client{"APP", "2.2.2.2", l("blue")}, true},
		{client{"app", "2.2.2.2", l("green")}, false},
		{client{"app", "2.2.2.2", nil}, false},
		{client{"other", "1.1.1.1", l("blue")}, false},
	}
	for _, tc := range cases {
		if got := ruleMatches(items, tc.c); got != tc.want {
			t.Errorf("%+v: %v", tc.c, got)
		}
	}
	if !ruleMatches([]GrayRuleItem{{ClientAppID: "app", ClientLabelList: []string{"*"}}}, client{"app", "9.9.9.9", nil}) {
		t.Error("label wildcard matches a client without label")
	}
}
