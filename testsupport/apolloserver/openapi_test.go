package apolloserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

const P = "/envs/DEV/apps/app/clusters/default/namespaces/application"

func openAPIServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s := start(t, opts)
	must(t, s.CreateApp("app", ""))
	must(t, s.CreateApp("other", ""))
	must(t, s.CreateToken("tok"))
	must(t, s.GrantApp("tok", "app"))
	return s
}

func TestOpenAPIAuthentication(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{})
	_, err := s.CreateNamespace("app", "db", FormatProperties)
	must(t, err)
	item := map[string]string{"key": "k", "value": "v", "dataChangeCreatedBy": "apollo"}

	for _, tok := range []string{"", "nope", "Bearer tok"} {
		if r := api(t, s, "GET", P+"/items", tok, nil); r.status != 401 {
			t.Errorf("token %q: %d, want 401", tok, r.status)
		}
	}
	must(t, s.CreateToken("expired"))
	must(t, s.ExpireToken("expired"))
	if r := api(t, s, "GET", P+"/items", "expired", nil); r.status != 401 {
		t.Errorf("expired token: %d", r.status)
	}

	// A token without grants may read but not write.
	must(t, s.CreateToken("reader"))
	if r := api(t, s, "GET", P+"/items", "reader", nil); r.status != 200 {
		t.Fatalf("read: %d %s", r.status, r.body)
	}
	e := expectError(t, api(t, s, "POST", P+"/items", "reader", item), 403, "403", "Access is denied")
	if e.Exception != exAccessDenied || e.Timestamp == "" {
		t.Errorf("403 body %+v", e)
	}

	// A namespace grant covers that namespace only (and branches need an app grant).
	must(t, s.CreateToken("ns"))
	must(t, s.GrantNamespace("ns", "app", "application", ""))
	if r := api(t, s, "POST", P+"/items", "ns", item); r.status != 200 {
		t.Fatalf("granted namespace: %d %s", r.status, r.body)
	}
	if r := api(t, s, "POST", "/envs/DEV/apps/app/clusters/default/namespaces/db/items", "ns", item); r.status != 403 {
		t.Errorf("other namespace: %d", r.status)
	}
	if r := api(t, s, "POST", "/envs/DEV/apps/other/clusters/default/namespaces/application/items", "ns", item); r.status != 403 {
		t.Errorf("other app: %d", r.status)
	}
	if r := api(t, s, "POST", P+"/branches?operator=apollo", "ns", nil); r.status != 403 {
		t.Errorf("branch with a namespace grant: %d", r.status)
	}
	if r := api(t, s, "POST", P+"/branches?operator=apollo", "tok", nil); r.status != 200 {
		t.Errorf("branch with an app grant: %d %s", r.status, r.body)
	}
	// An env-scoped grant.
	must(t, s.CreateToken("devonly"))
	must(t, s.GrantNamespace("devonly", "app", "db", "DEV"))
	if r := api(t, s, "POST", "/envs/DEV/apps/app/clusters/default/namespaces/db/items", "devonly", item); r.status != 200 {
		t.Errorf("env grant: %d %s", r.status, r.body)
	}
}

func TestOpenAPIItems(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{})
	must(t, s.CreateUser("alice"))
	path := P + "/items"

	// Apollo's Gson converter only reads JSON bodies.
	r := do(t, "POST", s.PortalURL()+"openapi/v1"+path, map[string]string{"Authorization": "tok"}, []byte(`{"key":"k"}`))
	e := expectError(t, r, 400, "400", "Content type 'application/octet-stream' not supported")
	if e.Exception != exMediaType {
		t.Errorf("exception %s", e.Exception)
	}

	expectError(t, api(t, s, "POST", path, "tok", map[string]string{"value": "v", "dataChangeCreatedBy": "alice"}),
		400, "400", "key and dataChangeCreatedBy should not be null or empty")
	expectError(t, api(t, s, "POST", path, "tok", map[string]string{"key": "k", "value": "v", "dataChangeCreatedBy": "bob"}),
		400, "400", "User bob doesn't exist!")
	expectError(t, api(t, s, "POST", path, "tok", map[string]string{"key": "k", "value": "v", "dataChangeCreatedBy": "alice", "comment": strings.Repeat("c", 257)}),
		400, "400", "Comment length should not exceed 256 characters")

	r = api(t, s, "POST", path, "tok", map[string]string{"key": "k1", "value": "v1", "comment": "first", "dataChangeCreatedBy": "alice"})
	var it struct {
		Key, Value, Comment, DataChangeCreatedBy, DataChangeLastModifiedBy, DataChangeCreatedTime string
	}
	r.json(t, &it)
	if r.status != 200 || it.Key != "k1" || it.Value != "v1" || it.Comment != "first" || it.DataChangeCreatedBy != "alice" || it.DataChangeLastModifiedBy != "alice" ||
		!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$`).MatchString(it.DataChangeCreatedTime) {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// Errors raised by the admin service reach the client with a Double status.
	expectError(t, api(t, s, "POST", path, "tok", map[string]string{"key": "k1", "value": "v", "dataChangeCreatedBy": "alice"}),
		400, "400.0", "item already exists for itemKey:k1")
	expectError(t, api(t, s, "POST", path, "tok", map[string]string{"key": strings.Repeat("k", 129), "value": "v", "dataChangeCreatedBy": "alice"}),
		400, "400.0", "key too long. length limit:128")
	expectError(t, api(t, s, "POST", path, "tok", map[string]string{"key": "big", "value": strings.Repeat("v", 20001), "dataChangeCreatedBy": "alice"}),
		400, "400.0", "value too long. length limit:20000")
	if r := api(t, s, "POST", path, "tok", map[string]string{"key": strings.Repeat("k", 128), "value": strings.Repeat("v", 20000), "dataChangeCreatedBy": "alice"}); r.status != 200 {
		t.Fatalf("limits are inclusive: %d %s", r.status, r.body)
	}
	// Lengths are Java String lengths (UTF-16 code units).
	expectError(t, api(t, s, "POST", path, "tok", map[string]string{"key": strings.Repeat("😀", 65), "value": "v", "dataChangeCreatedBy": "alice"}),
		400, "400.0", "key too long. length limit:128")
	expectError(t, api(t, s, "POST", "/envs/DEV/apps/app/clusters/default/namespaces/nope/items", "tok", map[string]string{"key": "k", "dataChangeCreatedBy": "alice"}),
		404, "404.0", "namespace not found for appId:app clusterName:default namespaceName:nope")

	if r := api(t, s, "GET", path+"/k1", "tok", nil); r.status != 200 || !strings.Contains(string(r.body), `"value":"v1"`) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	expectError(t, api(t, s, "GET", path+"/nope", "tok", nil), 404, "404.0",
		"item not found for appId:app clusterName:default namespaceName:application itemKey:nope")

	// Update.
	upd := map[string]string{"key": "k1", "value": "v1b", "dataChangeLastModifiedBy": "apollo"}
	if r := api(t, s, "PUT", path+"/k1", "tok", upd); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if items, _ := s.Items("app", "default", "application"); items["k1"] != "v1b" {
		t.Fatalf("after update: %v", items)
	}
	expectError(t, api(t, s, "PUT", path+"/k2", "tok", upd), 400, "400", "Key in path and payload is not consistent")
	expectError(t, api(t, s, "PUT", path+"/k1", "tok", map[string]string{"key": "k1", "value": "x"}), 400, "400", "key and dataChangeLastModifiedBy can not be empty")
	expectError(t, api(t, s, "PUT", path+"/k1", "tok", map[string]string{"key": "k1", "value": "x", "dataChangeLastModifiedBy": "bob"}), 400, "400", "user(dataChangeLastModifiedBy) not exists")
	up2 := map[string]string{"key": "k2", "value": "v2", "dataChangeLastModifiedBy": "apollo", "dataChangeCreatedBy": "apollo"}
	expectError(t, api(t, s, "PUT", path+"/k2", "tok", up2), 404, "404.0", "item not found for appId:app clusterName:default namespaceName:application itemKey:k2")
	if r := api(t, s, "PUT", path+"/k2?createIfNotExists=true", "tok", up2); r.status != 200 {
		t.Fatalf("createIfNotExists: %d %s", r.status, r.body)
	}
	if items, _ := s.Items("app", "default", "application"); items["k2"] != "v2" {
		t.Fatalf("createIfNotExists did not create: %v", items)
	}

	// List with paging.
	r = api(t, s, "GET", path+"?page=0&size=2", "tok", nil)
	var page struct {
		Page, Size, Total int
		Content           []struct{ Key string }
	}
	r.json(t, &page)
	if r.status != 200 || page.Total != 3 || len(page.Content) != 2 || page.Content[0].Key != "k1" {
		t.Fatalf("page: %d %s", r.status, r.body)
	}
	expectError(t, api(t, s, "GET", path+"?page=-1", "tok", nil), 400, "400", "findItemsByNamespace.page: page should be positive or 0")

	// Delete.
	e = expectError(t, api(t, s, "DELETE", path+"/k2", "tok", nil), 500, "500", "")
	if e.Exception != exMissingParam {
		t.Errorf("delete without operator: %+v", e)
	}
	expectError(t, api(t, s, "DELETE", path+"/k2?operator=bob", "tok", nil), 400, "400", "user(operator) not exists")
	if r := api(t, s, "DELETE", path+"/k2?operator=apollo", "tok", nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	expectError(t, api(t, s, "DELETE", path+"/k2?operator=apollo", "tok", nil), 404, "404.0", "")

	// Keys that cannot travel in a path segment go base64url-encoded.
	must(t, s.SetItem("app", "default", "application", "a/b", "slash"))
	if r := api(t, s, "GET", P+"/encodeItems/YS9i", "tok", nil); r.status != 200 || !strings.Contains(string(r.body), `"value":"slash"`) {
		t.Fatalf("encodeItems: %d %s", r.status, r.body)
	}

	// Unknown env, wrong method.
	e = expectError(t, api(t, s, "GET", "/envs/XYZ/apps/app/clusters/default/namespaces/application/items/k1", "tok", nil), 500, "500", "XYZ not exist")
	if e.Exception != exIllegalArgument {
		t.Errorf("unknown env exception %s", e.Exception)
	}
	if r := api(t, s, "GET", "/envs/dev/apps/app/clusters/default/namespaces/application/items/k1", "tok", nil); r.status != 200 {
		t.Errorf("env is case-insensitive: %d", r.status)
	}
	expectError(t, api(t, s, "PATCH", path+"/k1", "tok", nil), 400, "400", "Request method 'PATCH' not supported")
}

type openRelease struct {
	ID             int64             `json:"id"`
	AppID          string            `json:"appId"`
	ClusterName    string            `json:"clusterName"`
	NamespaceName  string            `json:"namespaceName"`
	Name           string            `json:"name"`
	Comment        string            `json:"comment"`
	Configurations map[string]string `json:"configurations"`
	CreatedBy      string            `json:"dataChangeCreatedBy"`
}

func releaseBody(title, by string) map[string]any {
	return map[string]any{"releaseTitle": title, "releaseComment": "c", "releasedBy": by}
}

func TestOpenAPIReleasesAndRollback(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{LongPollTimeout: 30 * time.Second})
	must(t, s.CreateToken("stranger"))
	must(t, s.SetItem("app", "default", "application", "version", "1.0"))

	expectError(t, api(t, s, "POST", P+"/releases", "tok", map[string]any{"releasedBy": "apollo"}), 400, "400", "Params(releaseTitle and releasedBy) can not be empty")
	expectError(t, api(t, s, "POST", P+"/releases", "tok", releaseBody("t", "bob")), 400, "400", "user not exists for userName:bob")
	expectError(t, api(t, s, "POST", "/envs/DEV/apps/app/clusters/nope/namespaces/application/releases", "tok", releaseBody("t", "apollo")),
		404, "404.0", "namespace not found for appId:app clusterName:nope namespaceName:application")
	if r := api(t, s, "GET", P+"/releases/latest", "tok", nil); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("latest before any release: %d %q, want 200 and no body", r.status, r.body)
	}

	ch := asyncPoll(s, "app", "default", "application", -1)
	waitHeld(t, s, 1)
	r := api(t, s, "POST", P+"/releases", "tok", releaseBody("app 1.0", "apollo"))
	var rel1 openRelease
	r.json(t, &rel1)
	if r.status != 200 || rel1.Name != "app 1.0" || rel1.Comment != "c" || rel1.Configurations["version"] != "1.0" || rel1.CreatedBy != "apollo" || rel1.ID == 0 {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	if res := recv(t, ch, 5*time.Second); res.status != 200 || res.n[0].NamespaceName != "application" {
		t.Fatalf("publish did not notify: %+v", res)
	}
	_, c1 := getConfig(t, s, "app", "default", "application", nil)
	if c1.Configurations["version"] != "1.0" || !releaseKeyRE.MatchString(c1.ReleaseKey) {
		t.Fatalf("config: %+v", c1)
	}

	expectError(t, api(t, s, "PUT", fmt.Sprintf("/envs/DEV/releases/%d/rollback?operator=apollo", rel1.ID), "tok", nil), 400, "400.0",
		"Can't rollback namespace(appId=app, clusterName=default, namespaceName=application) because there is only one active release")

	must(t, s.SetItem("app", "default", "application", "version", "2.0"))
	r = api(t, s, "POST", P+"/releases", "tok", releaseBody("app 2.0", "apollo"))
	var rel2 openRelease
	r.json(t, &rel2)

	r = api(t, s, "GET", P+"/releases/latest", "tok", nil)
	var latest openRelease
	r.json(t, &latest)
	if latest.ID != rel2.ID || latest.Name != "app 2.0" {
		t.Fatalf("latest: %s", r.body)
	}
	r = api(t, s, "GET", P+"/releases/active?page=0&size=10", "tok", nil)
	var active []openRelease
	r.json(t, &active)
	if len(active) != 2 || active[0].ID != rel2.ID || active[1].ID != rel1.ID {
		t.Fatalf("active: %s", r.body)
	}
	r = api(t, s, "GET", fmt.Sprintf("/envs/DEV/releases/%d", rel1.ID), "tok", nil)
	var byID openRelease
	r.json(t, &byID)
	if byID.Name != "app 1.0" {
		t.Fatalf("by id: %s", r.body)
	}
	expectError(t, api(t, s, "GET", "/envs/DEV/releases/999", "tok", nil), 404, "404", "release not found for releaseId:999")

	// Rollback.
	expectError(t, api(t, s, "PUT", fmt.Sprintf("/envs/DEV/releases/%d/rollback?operator=apollo", rel2.ID), "stranger", nil), 403, "403",
		"Forbidden operation. you don't have release permission")
	expectError(t, api(t, s, "PUT", "/envs/DEV/releases/999/rollback?operator=apollo", "tok", nil), 400, "400", "release not found")
	expectError(t, api(t, s, "PUT", fmt.Sprintf("/envs/DEV/releases/%d/rollback?operator=", rel2.ID), "tok", nil), 400, "400", "Param operator can not be empty")
	id := s.NotificationID("app", "default", "application")
	ch = asyncPoll(s, "app", "default", "application", id)
	waitHeld(t, s, 1)
	if r := api(t, s, "PUT", fmt.Sprintf("/envs/DEV/releases/%d/rollback?operator=apollo", rel2.ID), "tok", nil); r.status != 200 {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	if res := recv(t, ch, 5*time.Second); res.status != 200 || res.n[0].NotificationID <= id {
		t.Fatalf("rollback did not notify: %+v", res)
	}
	if _, c := getConfig(t, s, "app", "default", "application", nil); c.ReleaseKey != c1.ReleaseKey || c.Configurations["version"] != "1.0" {
		t.Fatalf("after rollback: %+v", c)
	}
	expectError(t, api(t, s, "PUT", fmt.Sprintf("/envs/DEV/releases/%d/rollback?operator=apollo", rel2.ID), "tok", nil), 400, "400.0", "release is not active")

	rs := s.Releases("app", "default", "application")
	if len(rs) != 2 || rs[0].Name != "app 2.0" || !rs[0].Abandoned || rs[1].Name != "app 1.0" || rs[1].Abandoned {
		t.Fatalf("Releases: %+v", rs)
	}
	h := s.ReleaseHistory("app", "default", "application")
	if len(h) != 3 || h[0].Operation != OpRollback || h[0].PreviousReleaseID != rel2.ID || h[0].ReleaseID != rel1.ID {
		t.Fatalf("history: %+v", h)
	}
}

func TestOpenAPIRateLimit(t *testing.T) {
	testenv.IntegrationTest(t)
	clock := &manualClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.Local)}
	s := openAPIServer(t, Options{Now: clock.Now})
	must(t, s.SetTokenRateLimit("tok", 2))
	for i := 0; i < 5; i++ { // warm-up second: everything passes
		if r := api(t, s, "GET", P+"/items", "tok", nil); r.status != 200 {
			t.Fatalf("warm-up call %d: %d", i, r.status)
		}
	}
	clock.Add(2 * time.Second)
	for i := 0; i < 2; i++ {
		if r := api(t, s, "GET", P+"/items", "tok", nil); r.status != 200 {
			t.Fatalf("call %d: %d", i, r.status)
		}
	}
	if r := api(t, s, "GET", P+"/items", "tok", nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("over the limit: %d", r.status)
	}
	clock.Add(time.Second)
	if r := api(t, s, "GET", P+"/items", "tok", nil); r.status != 200 {
		t.Fatalf("after refill: %d", r.status)
	}
}

func TestOpenAPINamespaceView(t *testing.T) {
	testenv.IntegrationTest(t)
	s := openAPIServer(t, Options{})
	ns, err := s.CreateNamespace("app", "gw", FormatJSON)
	must(t, err)
	publish(t, s, "app", "default", "application", "r", "a", "1", "b", "2")
	must(t, s.DeleteItem("app", "default", "application", "b"))

	r := api(t, s, "GET", P, "tok", nil)
	var v struct {
		AppID, ClusterName, NamespaceName, Format string
		IsPublic                                  bool
		Items                                     []struct{ Key, Value string }
	}
	r.json(t, &v)
	// Deleted-but-unpublished items are listed with their released value.
	if r.status != 200 || v.Format != "properties" || v.IsPublic || len(v.Items) != 2 || v.Items[1].Key != "b" || v.Items[1].Value != "2" {
		t.Fatalf("namespace: %d %s", r.status, r.body)
	}
	r = api(t, s, "GET", "/envs/DEV/apps/app/clusters/default/namespaces", "tok", nil)
	var list []struct{ NamespaceName, Format string }
	r.json(t, &list)
	if len(list) != 2 || list[1].NamespaceName != ns || list[1].Format != "json" {
		t.Fatalf("namespaces: %s", r.body)
	}
	r = api(t, s, "GET", "/apps/app/envclusters", "tok", nil)
	var ec []struct {
		Env      string
		Clusters []string
	}
	r.json(t, &ec)
	if len(ec) != 1 || ec[0].Env != "DEV" || len(ec[0].Clusters) != 1 || ec[0].Clusters[0] != "default" {
		t.Fatalf("envclusters: %s", r.body)
	}
	var apps []map[string]any
	api(t, s, "GET", "/apps", "tok", nil).json(t, &apps)
	if len(apps) != 2 {
		t.Fatalf("apps: %v", apps)
	}
	b, _ := json.Marshal(apps[0])
	if !strings.Contains(string(b), `"appId":"app"`) {
		t.Fatalf("apps: %s", b)
	}
}
