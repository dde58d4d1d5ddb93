package apolloserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

func TestConfigs404BeforeFirstRelease(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{})
	must(t, s.CreateApp("app1", ""))
	r := get(t, s.URL()+"configs/app1/default/application")
	if r.status != http.StatusNotFound {
		t.Fatalf("status %d, want 404", r.status)
	}
	if !strings.Contains(string(r.body), "Could not load configurations with appId: app1, clusterName: default, namespace: application") {
		t.Errorf("body %s", r.body)
	}
	if st, _ := getConfig(t, s, "nosuchapp", "default", "application", nil); st != http.StatusNotFound {
		t.Errorf("unknown app: %d, want 404", st)
	}
}

func TestConfigsReleaseKeyAnd304(t *testing.T) {
	testenv.IntegrationTest(t)
	clock := &manualClock{t: time.Date(2024, 5, 6, 7, 8, 9, 0, time.Local)}
	s := start(t, Options{Now: clock.Now})
	must(t, s.CreateApp("app1", ""))
	rel := publish(t, s, "app1", "default", "application", "first", "k1", "v1", "k2", "v2")
	if !releaseKeyRE.MatchString(rel.ReleaseKey) || !strings.HasPrefix(rel.ReleaseKey, "20240506070809-") {
		t.Fatalf("release key %q not in Apollo's yyyyMMddHHmmss-<16hex> format at the server clock", rel.ReleaseKey)
	}

	st, c := getConfig(t, s, "app1", "default", "application", nil)
	if st != 200 || c.AppID != "app1" || c.Cluster != "default" || c.NamespaceName != "application" ||
		c.ReleaseKey != rel.ReleaseKey || c.Configurations["k1"] != "v1" || c.Configurations["k2"] != "v2" {
		t.Fatalf("got %d %+v", st, c)
	}

	if got, ok := s.LastConfigRead("app1", "default", "application", ""); !ok || got != (ConfigRead{Status: 200, Message: s.LatestMessage()}) {
		t.Fatalf("LastConfigRead after a 200 = %+v, %v; want 200 at message %d", got, ok, s.LatestMessage())
	}
	r := get(t, s.URL()+"configs/app1/default/application?releaseKey="+rel.ReleaseKey)
	if r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Fatalf("same releaseKey: %d %q, want 304 and no body", r.status, r.body)
	}
	if got, _ := s.LastConfigRead("app1", "default", "application", ""); got.Status != http.StatusNotModified || got.Message != s.LatestMessage() {
		t.Fatalf("LastConfigRead after a 304 = %+v", got)
	}
	if _, ok := s.LastConfigRead("app1", "default", "application", "canary"); ok {
		t.Fatal("LastConfigRead of a label that never read")
	}
	if st, _ := getConfig(t, s, "app1", "default", "application", url.Values{"releaseKey": {"stale"}}); st != 200 {
		t.Fatalf("stale releaseKey: %d", st)
	}

	// application.properties is the application namespace; the reply names it as sent.
	for _, ns := range []string{"application.properties", "APPLICATION", "Application.Properties"} {
		st, c := getConfig(t, s, "app1", "default", ns, nil)
		if st != 200 || c.NamespaceName != ns || c.ReleaseKey != rel.ReleaseKey || c.Configurations["k1"] != "v1" {
			t.Errorf("%s: %d %+v", ns, st, c)
		}
	}

	clock.Add(time.Second)
	rel2 := publish(t, s, "app1", "default", "application", "second", "k1", "v1b")
	if rel2.ReleaseKey == rel.ReleaseKey || !strings.HasPrefix(rel2.ReleaseKey, "20240506070810-") {
		t.Fatalf("second release key %q", rel2.ReleaseKey)
	}
	if st, c := getConfig(t, s, "app1", "default", "application", url.Values{"releaseKey": {rel.ReleaseKey}}); st != 200 || c.Configurations["k1"] != "v1b" {
		t.Fatalf("after second release: %d %+v", st, c)
	}
}

func TestConfigsClusterAndDataCenterFallback(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{})
	must(t, s.CreateApp("app", ""))
	must(t, s.CreateCluster("app", "shanghai"))
	must(t, s.CreateCluster("app", "blue"))
	publish(t, s, "app", "default", "application", "d", "k", "default")

	check := func(cluster string, q url.Values, wantCluster, wantV string) {
		t.Helper()
		st, c := getConfig(t, s, "app", cluster, "application", q)
		if st != 200 || c.Cluster != wantCluster || c.Configurations["k"] != wantV {
			t.Errorf("cluster %s %v: %d cluster=%q k=%q, want %q %q", cluster, q, st, c.Cluster, c.Configurations["k"], wantCluster, wantV)
		}
	}
	check("blue", nil, "default", "default")
	check("nosuchcluster", nil, "default", "default")

	publish(t, s, "app", "shanghai", "application", "sh", "k", "sh")
	check("blue", url.Values{"dataCenter": {"shanghai"}}, "shanghai", "sh")
	check("blue", nil, "default", "default")
	check("default", url.Values{"dataCenter": {"shanghai"}}, "shanghai", "sh")

	publish(t, s, "app", "blue", "application", "blue", "k", "blue")
	check("blue", url.Values{"dataCenter": {"shanghai"}}, "blue", "blue")

	// Options.DataCenter stands in for clients that send none (agollo never does).
	s2 := start(t, Options{DataCenter: "shanghai"})
	must(t, s2.CreateApp("app", ""))
	must(t, s2.CreateCluster("app", "shanghai"))
	publish(t, s2, "app", "default", "application", "d", "k", "default")
	publish(t, s2, "app", "shanghai", "application", "sh", "k", "sh")
	if st, c := getConfig(t, s2, "app", "blue", "application", nil); st != 200 || c.Cluster != "shanghai" || c.Configurations["k"] != "sh" {
		t.Errorf("Options.DataCenter: %d %+v", st, c)
	}
}

func TestConfigsNonPropertiesNamespace(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{})
	must(t, s.CreateApp("app", ""))
	ns, err := s.CreateNamespace("app", "gateway", FormatYAML)
	must(t, err)
	if ns != "gateway.yaml" {
		t.Fatalf("namespace name %q, want gateway.yaml", ns)
	}
	if _, err := s.CreateNamespace("app", "bad.yaml", FormatYAML); err == nil {
		t.Error("a name carrying the format suffix must be refused")
	}
	doc := "routes:\n  - a: 1\n"
	publish(t, s, "app", "default", ns, "yaml", "content", doc)

	st, c := getConfig(t, s, "app", "default", "gateway.yaml", nil)
	if st != 200 || len(c.Configurations) != 1 || c.Configurations["content"] != doc || c.NamespaceName != "gateway.yaml" {
		t.Fatalf("%d %+v", st, c)
	}
	r := get(t, s.URL()+"configfiles/raw/app/default/gateway.yaml")
	if r.status != 200 || string(r.body) != doc || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Errorf("raw: %d %q %s", r.status, r.body, r.header.Get("Content-Type"))
	}
	r = get(t, s.URL()+"configfiles/json/app/default/gateway.yaml")
	var m map[string]string
	r.json(t, &m)
	if m["content"] != doc {
		t.Errorf("json: %s", r.body)
	}
}

func TestConfigFiles(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{})
	must(t, s.CreateApp("app", ""))
	if r := get(t, s.URL()+"configfiles/json/app/default/application"); r.status != 404 {
		t.Fatalf("before release: %d", r.status)
	}
	publish(t, s, "app", "default", "application", "r", "a b", "x=y:z#é", "plain", " lead")
	r := get(t, s.URL()+"configfiles/json/app/default/application?ip=1.2.3.4")
	var m map[string]string
	r.json(t, &m)
	if r.status != 200 || m["a b"] != "x=y:z#é" || m["plain"] != " lead" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("json: %d %s", r.status, r.body)
	}
	r = get(t, s.URL()+"configfiles/app/default/application")
	want := "a\\ b=x\\=y\\:z\\#\\u00E9\nplain=\\ lead\n"
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("properties: %d %q, want %q", r.status, r.body, want)
	}
}

func TestPublicNamespaceAndOverride(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{})
	must(t, s.CreateApp("pub", ""))
	must(t, s.CreateApp("app", ""))
	ns, err := s.CreatePublicNamespace("pub", "shared", FormatProperties)
	must(t, err)
	if _, err := s.CreateNamespace("app", "shared", FormatProperties); err == nil {
		t.Fatal("public namespace names are global")
	}
	pr := publish(t, s, "pub", "default", ns, "p", "k1", "p1", "k2", "p2")

	st, c := getConfig(t, s, "app", "default", "shared", nil)
	if st != 200 || c.ReleaseKey != pr.ReleaseKey || c.Configurations["k1"] != "p1" || c.AppID != "app" || c.Cluster != "default" {
		t.Fatalf("public: %d %+v", st, c)
	}

	must(t, s.AssociateNamespace("app", "default", "shared"))
	ar := publish(t, s, "app", "default", "shared", "o", "k1", "o1")
	st, c = getConfig(t, s, "app", "default", "SHARED", nil)
	if st != 200 || c.ReleaseKey != ar.ReleaseKey+"+"+pr.ReleaseKey || c.Configurations["k1"] != "o1" || c.Configurations["k2"] != "p2" || c.NamespaceName != "SHARED" {
		t.Fatalf("override: %d %+v", st, c)
	}

	// A client of "app" watching "shared" is woken by the owner's release.
	_, n := poll(t, s, "app", "default", "shared", -1)
	if len(n) != 1 {
		t.Fatalf("poll: %+v", n)
	}
	ch := asyncPoll(s, "app", "default", "shared", n[0].NotificationID)
	waitHeld(t, s, 1)
	publish(t, s, "pub", "default", "shared", "p2", "k2", "p2b")
	res := recv(t, ch, 5*time.Second)
	if res.status != 200 || len(res.n) != 1 || res.n[0].Messages.Details["pub+default+shared"] != res.n[0].NotificationID {
		t.Fatalf("wake: %+v %s", res, res.body)
	}
}

func TestMetaServer(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{})
	r := get(t, s.URL()+"services/config?appId=app&ip=1.2.3.4")
	var list []struct {
		AppName     string `json:"appName"`
		InstanceID  string `json:"instanceId"`
		HomepageURL string `json:"homepageUrl"`
	}
	r.json(t, &list)
	if r.status != 200 || len(list) != 1 || list[0].AppName != "APOLLO-CONFIGSERVICE" || list[0].HomepageURL != s.URL() ||
		!strings.HasSuffix(list[0].HomepageURL, "/") || list[0].InstanceID == "" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestAccessKeySignature(t *testing.T) {
	testenv.IntegrationTest(t)
	clock := &manualClock{t: time.Now()}
	s := start(t, Options{Now: clock.Now})
	must(t, s.CreateApp("open", ""))
	must(t, s.CreateApp("sec", "s3cret"))
	publish(t, s, "open", "default", "application", "r", "k", "v")
	publish(t, s, "sec", "default", "application", "r", "k", "v")

	pathQuery := "/configs/sec/default/application?ip=10.0.0.1&label="
	signed := func(secret string, ts time.Time) map[string]string {
		stamp := strconv.FormatInt(ts.UnixMilli(), 10)
		return map[string]string{"Timestamp": stamp, "Authorization": "Apollo sec:" + Signature(stamp, pathQuery, secret)}
	}
	u := strings.TrimSuffix(s.URL(), "/") + pathQuery

	if r := get(t, s.URL()+"configs/open/default/application"); r.status != 200 {
		t.Fatalf("app without secret needs no signature: %d", r.status)
	}
	r := get(t, u)
	if r.status != 401 || !strings.Contains(string(r.body), "RequestTimeTooSkewed") {
		t.Fatalf("unsigned: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", u, signed("s3cret", clock.Now()), nil); r.status != 200 {
		t.Fatalf("signed: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", u, signed("wrong", clock.Now()), nil); r.status != 401 || !strings.Contains(string(r.body), "Unauthorized") {
		t.Fatalf("wrong secret: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", u, signed("s3cret", clock.Now().Add(-59*time.Second)), nil); r.status != 200 {
		t.Fatalf("59 s skew: %d", r.status)
	}
	if r := do(t, "GET", u, signed("s3cret", clock.Now().Add(61*time.Second)), nil); r.status != 401 {
		t.Fatalf("61 s skew: %d", r.status)
	}
	// The signature covers the query string.
	if r := do(t, "GET", u+"x", signed("s3cret", clock.Now()), nil); r.status != 401 {
		t.Fatalf("tampered query: %d", r.status)
	}

	// notifications/v2 takes the appId from the query and is checked too.
	nu := notificationsURL(s, "sec", "default", "application", -1)
	if r := get(t, nu); r.status != 401 {
		t.Fatalf("unsigned poll: %d", r.status)
	}
	pu, _ := url.Parse(nu)
	stamp := strconv.FormatInt(clock.Now().UnixMilli(), 10)
	h := map[string]string{"Timestamp": stamp, "Authorization": "Apollo sec:" + Signature(stamp, pu.RequestURI(), "s3cret")}
	if r := do(t, "GET", nu, h, nil); r.status != 200 {
		t.Fatalf("signed poll: %d %s", r.status, r.body)
	}

	// Rotating the key: the old secret stops working at once.
	must(t, s.SetAccessKeys("sec", "n3w"))
	if r := do(t, "GET", u, signed("s3cret", clock.Now()), nil); r.status != 401 {
		t.Fatalf("old secret after rotation: %d", r.status)
	}
	if r := do(t, "GET", u, signed("n3w", clock.Now()), nil); r.status != 200 {
		t.Fatalf("new secret: %d", r.status)
	}
}

func TestPropertiesEscapeAndJavaHash(t *testing.T) {
	if got := javaStringHash("hello"); got != 99162322 {
		t.Errorf("javaStringHash(hello) = %d", got)
	}
	if got := propertiesEscape("a:b c\t😀", true); got != `a\:b\ c\t\uD83D\uDE00` {
		t.Errorf("key escape %q", got)
	}
	if got := propertiesEscape(" a b", false); got != `\ a b` {
		t.Errorf("value escape %q", got)
	}
	var m orderedMap
	m.set("z", "1")
	m.set("a", "2")
	b, _ := json.Marshal(m)
	if string(b) != `{"z":"1","a":"2"}` {
		t.Errorf("ordered map %s", b)
	}
}
