package sdk_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk"
	"github.com/graylane/graylane/sdk/gingray"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/grayvectors"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

func str(s string) *string { return &s }

func doc(app string, rules []spec.GrayRule, split ...traffic.VersionWeight) *gray.Document {
	return &gray.Document{
		Schema: gray.Schema, App: app, Generation: 1,
		UserKey:   gray.UserKey{Header: gray.DefaultUserHeader, Cookie: gray.DefaultUserCookie},
		Bucketing: gray.Bucketing{Hash: gray.HashName, Salt: spec.DefaultGraySalt, Buckets: gray.Buckets},
		Rules:     rules, Split: split,
	}
}

func vw(v string, w int) traffic.VersionWeight { return traffic.VersionWeight{Version: v, Weight: w} }

// userIn finds a user whose bucket is in [lo, hi).
func userIn(lo, hi int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("user-%d", i)
		if b, _ := gray.Bucket(spec.DefaultGraySalt, k); b >= lo && b < hi {
			return k
		}
	}
}

// trustKey is an edge's trust: requests with X-Key: k.
func trustKey(r *http.Request) bool { return r.Header.Get("X-Key") == "k" }

func TestRouterDecide(t *testing.T) {
	testers := []spec.GrayRule{{Name: "t", Match: spec.GrayMatch{Headers: []spec.StringMatch{{Name: "X-Tester", Equals: str("yes")}}}, Version: "v2"}}
	canary, stable := userIn(0, 1000), userIn(5000, 10000)
	newRouter := func(edge bool) *sdk.Router {
		r := sdk.NewRouter(sdk.RouterConfig{Edge: edge, Trusted: trustKey})
		r.Replace([]*gray.Document{
			doc("a", testers, vw("v2", 10), vw("v1", 90)),
			doc("b", nil, vw("v2", 10), vw("v1", 90)),
			doc("c", nil, vw("v1", 100)),
		})
		return r
	}
	cases := []struct {
		name   string
		edge   bool
		header map[string]string
		want   string // n-d-version
		key    string
	}{
		{"canary user: every app with a canary", false, map[string]string{"X-Gray-User": canary}, `{"a":"v2","b":"v2","c":"v1"}`, canary},
		{"stable user", false, map[string]string{"X-Gray-User": stable}, `{"a":"v1","b":"v1","c":"v1"}`, stable},
		{"user by cookie", false, map[string]string{"Cookie": "gray_user=" + canary}, `{"a":"v2","b":"v2","c":"v1"}`, canary},
		{"tester: only a has the rule", false, map[string]string{"X-Gray-User": stable, "X-Tester": "yes"}, `{"a":"v2","b":"v1","c":"v1"}`, stable},
		{"pins are honoured for routed versions", false, map[string]string{"X-Gray-User": stable, "n-d-version": `{"b":"v2","c":"v9","z":"v7"}`}, `{"a":"v1","b":"v2","c":"v1","z":"v7"}`, stable},
		{"Nepxion's plain form pins every app", false, map[string]string{"X-Gray-User": stable, "n-d-version": "v2"}, `{"a":"v2","b":"v2","c":"v1"}`, stable},
		{"the edge ignores pins", true, map[string]string{"X-Gray-User": stable, "n-d-version": `{"b":"v2"}`}, `{"a":"v1","b":"v1","c":"v1"}`, stable},
		{"malformed pins are ignored", false, map[string]string{"X-Gray-User": stable, "n-d-version": `{"b":`}, `{"a":"v1","b":"v1","c":"v1"}`, stable},
		{"version weights per app", false, map[string]string{"X-Gray-User": stable, "n-d-version-weight": `{"b":"v2=100;v1=0"}`}, `{"a":"v1","b":"v2","c":"v1"}`, stable},
		{"version weights for every app, routed versions only", false, map[string]string{"X-Gray-User": stable, "n-d-version-weight": "v1=0;v2=100"}, `{"a":"v2","b":"v2","c":"v1"}`, stable},
		{"a pin beats the weights", false, map[string]string{"X-Gray-User": canary, "n-d-version": `{"b":"v1"}`, "n-d-version-weight": `{"b":"v2=100"}`}, `{"a":"v2","b":"v1","c":"v1"}`, canary},
		{"the edge ignores weights", true, map[string]string{"X-Gray-User": stable, "n-d-version-weight": `{"b":"v2=100"}`}, `{"a":"v1","b":"v1","c":"v1"}`, stable},
		{"a trusted caller steers at the edge", true, map[string]string{"X-Gray-User": stable, "X-Key": "k", "n-d-version": `{"b":"v2"}`}, `{"a":"v1","b":"v2","c":"v1"}`, stable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRouter(c.edge)
			req := httptest.NewRequest(http.MethodGet, "http://a/", nil)
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			d := r.Decide(req)
			if d.Header() != c.want || d.UserKey() != c.key {
				t.Fatalf("decision %s (user %q), want %s (user %q)", d.Header(), d.UserKey(), c.want, c.key)
			}
		})
	}
	// Weights split users by their bucket: the same user, the same version.
	weighted := newRouter(false)
	got := map[string]int{}
	for i := 0; i < 2000; i++ {
		u := fmt.Sprintf("user-%d", i)
		req := httptest.NewRequest(http.MethodGet, "http://a/", nil)
		req.Header.Set("X-Gray-User", u)
		req.Header.Set("n-d-version-weight", `{"c":"v1=100","b":"v1=70;v2=30"}`)
		v, _ := weighted.Decide(req).Version("b")
		again, _ := weighted.Decide(req).Version("b")
		if v != again {
			t.Fatalf("%s got %s then %s from the same weights", u, v, again)
		}
		got[v]++
	}
	if got["v2"] < 500 || got["v2"] > 700 {
		t.Fatalf("v1=70;v2=30 over 2000 users: %v, want about 600 on v2", got)
	}

	// The preview header reaches the preview behind the edge, and at the
	// edge only for trusted callers.
	for _, c := range []struct {
		edge, trusted bool
		want          string
	}{{false, false, "v3"}, {true, false, "v1"}, {true, true, "v3"}} {
		pr := sdk.NewRouter(sdk.RouterConfig{Edge: c.edge, Trusted: trustKey})
		d := doc("p", nil, vw("v1", 100))
		d.Preview = "v3"
		pr.Set(d)
		req := httptest.NewRequest(http.MethodGet, "http://p/", nil)
		req.Header.Set("X-Graylane-Version", "v3")
		if c.trusted {
			req.Header.Set("X-Key", "k")
		}
		if v, _ := pr.Decide(req).Version("p"); v != c.want {
			t.Errorf("preview request (edge %v, trusted %v) decided %s, want %s", c.edge, c.trusted, v, c.want)
		}
	}

	r := newRouter(false)
	if got := r.Apps(); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("Apps = %v", got)
	}
	r.Remove("c")
	if r.Table("c") != nil || r.Generation("a") != 1 {
		t.Fatal("Remove")
	}
}

func TestDecisionTravelsInContext(t *testing.T) {
	r := sdk.NewRouter(sdk.RouterConfig{})
	r.Set(doc("a", nil, vw("v2", 100)))
	var got string
	var wg sync.WaitGroup
	h := sdk.Middleware(r, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		wg.Add(1)
		// async work handed the request's context, outliving the handler
		go func(ctx context.Context) {
			defer wg.Done()
			got, _ = sdk.VersionFor(ctx, "a")
		}(context.WithoutCancel(req.Context()))
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	wg.Wait()
	if got != "v2" {
		t.Fatalf("the goroutine saw version %q, want v2", got)
	}
	if _, ok := sdk.FromContext(context.Background()); ok {
		t.Fatal("a decision in an empty context")
	}
	var nilD *sdk.Decision
	if _, ok := nilD.Version("a"); ok || nilD.Header() != "{}" || nilD.Entries() != nil {
		t.Fatal("nil decision")
	}
}

func TestGinMiddleware(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := sdk.NewRouter(sdk.RouterConfig{})
	r.Set(doc("a", nil, vw("v2", 100)))
	e := gin.New()
	e.Use(gingray.Middleware(r))
	e.GET("/", func(c *gin.Context) {
		d, ok := gingray.Decision(c)
		v, _ := d.Version("a")
		c.String(200, "%v %s", ok, v)
	})
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Body.String() != "true v2" {
		t.Fatalf("gin handler saw %q", w.Body.String())
	}
}

// fakeDiscovery serves fixed instance lists.
type fakeDiscovery struct {
	mu    sync.Mutex
	lists map[string][]gray.Instance
	subs  map[string][]chan []gray.Instance
}

func (f *fakeDiscovery) Watch(ctx context.Context, app string) <-chan []gray.Instance {
	ch := make(chan []gray.Instance, 1)
	f.mu.Lock()
	ch <- f.lists[app]
	if f.subs == nil {
		f.subs = map[string][]chan []gray.Instance{}
	}
	f.subs[app] = append(f.subs[app], ch)
	f.mu.Unlock()
	go func() { <-ctx.Done(); f.mu.Lock(); close(ch); f.subs[app] = nil; f.mu.Unlock() }()
	return ch
}

// versionServer answers its version.
func versionServer(t *testing.T, version string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s %s %s", version, r.Header.Get("n-d-version"), r.Header.Get("X-Gray-User"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func startClient(t *testing.T, rules *memory.Source, disc sdk.Discovery) *sdk.Client {
	c, err := sdk.Start(context.Background(), sdk.Config{App: "front", Version: "v1", Rules: rules, Discovery: disc, Services: []string{"shop"}})
	sdktest.Must(t, "start", err)
	t.Cleanup(func() { _ = c.Close() })
	sdktest.Must(t, "ready", c.Ready(sdktest.Ctx(t, 10*time.Second)))
	return c
}

func publish(t *testing.T, src *memory.Source, d *gray.Document) {
	b, err := d.Marshal()
	sdktest.Must(t, "marshal", err)
	_, err = src.Put(context.Background(), d.App, b, "")
	sdktest.Must(t, "put", err)
}

func get(t *testing.T, c *http.Client, ctx context.Context, url string, h map[string]string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), nil
}

func TestTransport(t *testing.T) {
	v1, v2 := versionServer(t, "v1"), versionServer(t, "v2")
	// a port that refuses connections: an instance that died unannounced
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	disc := &fakeDiscovery{lists: map[string][]gray.Instance{"shop": {
		{App: "shop", Version: "v1", ID: "1", Addr: v1, Ready: true},
		{App: "shop", Version: "v2", ID: "2", Addr: v2, Ready: true},
		{App: "shop", Version: "v2", ID: "3", Addr: dead, Ready: true},
		{App: "shop", Version: "v3", ID: "4", Addr: v2, Ready: false},
	}}}
	rules := memory.New()
	publish(t, rules, doc("shop", nil, vw("v2", 50), vw("v1", 50)))
	c := startClient(t, rules, disc)
	testenv.Eventually(t, 5*time.Second, "rules followed", func() error {
		return testenv.Check(c.Router().Generation("shop") == 1, "generation %d", c.Router().Generation("shop"))
	})
	hc := c.HTTPClient()
	ctx := context.Background()
	canary, stable := userIn(0, 5000), userIn(5000, 10000)

	// outside any request: the transport decides from the outbound request
	for i := 0; i < 10; i++ { // round robin over v2's live and dead instance
		body, err := get(t, hc, ctx, "http://shop/", map[string]string{"X-Gray-User": canary})
		sdktest.Must(t, "canary call", err)
		if want := fmt.Sprintf(`v2 {"shop":"v2"} %s`, canary); body != want {
			t.Fatalf("canary call answered %q, want %q", body, want)
		}
	}
	body, err := get(t, hc, ctx, "http://shop/", map[string]string{"X-Gray-User": stable})
	sdktest.Must(t, "stable call", err)
	if !strings.HasPrefix(body, `v1 {"shop":"v1"}`) {
		t.Fatalf("stable call answered %q", body)
	}
	// inside a request: the context's decision wins over the outbound headers
	d := sdk.NewRouter(sdk.RouterConfig{})
	d.Set(doc("shop", nil, vw("v1", 100)))
	dctx := sdk.NewContext(ctx, d.Decide(httptest.NewRequest(http.MethodGet, "/", nil)))
	body, err = get(t, hc, dctx, "http://shop/", map[string]string{"X-Gray-User": canary})
	sdktest.Must(t, "call in a request", err)
	if !strings.HasPrefix(body, "v1 ") {
		t.Fatalf("call with a v1 decision answered %q", body)
	}
	// a version with no ready instance falls back (v3's instance is not ready)
	publish(t, rules, doc("shop", nil, vw("v3", 100)))
	testenv.Eventually(t, 5*time.Second, "rules followed", func() error { return testenv.Check(c.Router().Table("shop").Routes("v3"), "v3 not routed yet") })
	body, err = get(t, hc, ctx, "http://shop/", nil)
	sdktest.Must(t, "fallback call", err)
	if !strings.HasPrefix(body, "v1 ") && !strings.HasPrefix(body, "v2 ") {
		t.Fatalf("fallback answered %q", body)
	}
	// other hosts pass through untouched
	body, err = get(t, hc, ctx, "http://"+v1+"/", nil)
	sdktest.Must(t, "passthrough", err)
	if body != "v1  " {
		t.Fatalf("a call to another host was changed: %q", body)
	}
	// an app with no instance at all fails clearly
	disc.mu.Lock()
	for _, ch := range disc.subs["shop"] {
		select {
		case <-ch:
		default:
		}
		ch <- nil
	}
	disc.mu.Unlock()
	testenv.Eventually(t, 5*time.Second, "instances gone", func() error { return testenv.Check(len(c.Instances("shop")) == 0, "instances %v", c.Instances("shop")) })
	if _, err := get(t, hc, ctx, "http://shop/", nil); err == nil || !strings.Contains(err.Error(), "no ready instance") {
		t.Fatalf("call with no instance: %v", err)
	}
}

func TestClientKeepsLastGoodDocument(t *testing.T) {
	rules := memory.New()
	publish(t, rules, doc("shop", nil, vw("v2", 100)))
	c := startClient(t, rules, &fakeDiscovery{lists: map[string][]gray.Instance{}})
	testenv.Eventually(t, 5*time.Second, "rules followed", func() error {
		return testenv.Check(c.Router().Generation("shop") == 1, "generation %d", c.Router().Generation("shop"))
	})
	changed := c.Router().Changed()
	_, err := rules.Put(context.Background(), "shop", []byte(`{"schema":"graylane.gray/v1","app":"shop","split":"x"}`), "")
	sdktest.Must(t, "put bad", err)
	publish(t, rules, doc("other", nil, vw("v1", 100)))
	<-changed
	testenv.Eventually(t, 5*time.Second, "other app followed", func() error {
		return testenv.Check(c.Router().Generation("other") == 1, "generation %d", c.Router().Generation("other"))
	})
	if c.Router().Table("shop") == nil || c.Router().Table("shop").Fallback()[0] != "v2" {
		t.Fatal("a malformed document replaced the last good one")
	}
	sdktest.Must(t, "delete", rules.Delete(context.Background(), "shop", ""))
	testenv.Eventually(t, 5*time.Second, "deleted document dropped", func() error { return testenv.Check(c.Router().Table("shop") == nil, "shop still has a table") })
}

func TestStartValidates(t *testing.T) {
	rules := memory.New()
	for name, cfg := range map[string]sdk.Config{
		"no app":                     {Version: "v1", Rules: rules},
		"bad version":                {App: "a", Version: "v 1", Rules: rules},
		"no rules":                   {App: "a", Version: "v1"},
		"services without discovery": {App: "a", Version: "v1", Rules: rules, Services: []string{"b"}},
		"bad service":                {App: "a", Version: "v1", Rules: rules, Discovery: &fakeDiscovery{}, Services: []string{"B_"}},
	} {
		if _, err := sdk.Start(context.Background(), cfg); err == nil {
			t.Errorf("%s: Start accepted %+v", name, cfg)
		}
	}
	c, err := sdk.Start(context.Background(), sdk.Config{App: "a", Version: "v1", Rules: rules})
	sdktest.Must(t, "start", err)
	defer c.Close()
	if err := c.Register(context.Background()); err == nil {
		t.Fatal("Register without a Registrar succeeded")
	}
}

// TestTransportPassesNepxionHeadersOn: behind the edge the steering
// headers the request brought travel on with the call; n-d-address picks
// the named instance.
func TestTransportPassesNepxionHeadersOn(t *testing.T) {
	echo := func(version string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, "%s|%s|%s|%s", version, r.Header.Get("n-d-version-weight"), r.Header.Get("n-d-region"), r.Header.Get("n-d-address"))
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	v1, v2 := echo("v1"), echo("v2")
	disc := &fakeDiscovery{lists: map[string][]gray.Instance{"shop": {
		{App: "shop", Version: "v1", ID: "1", Addr: v1, Ready: true},
		{App: "shop", Version: "v2", ID: "2", Addr: v2, Ready: true},
	}}}
	rules := memory.New()
	publish(t, rules, doc("shop", nil, vw("v1", 100)))
	c := startClient(t, rules, disc)
	testenv.Eventually(t, 5*time.Second, "rules followed", func() error {
		return testenv.Check(c.Router().Generation("shop") == 1, "generation %d", c.Router().Generation("shop"))
	})
	inbound := httptest.NewRequest(http.MethodGet, "http://front/", nil)
	inbound.Header.Set("n-d-version-weight", `{"other":"x=1"}`)
	inbound.Header.Set("n-d-region", "eu")
	inbound.Header.Set("n-d-address", `{"shop":"`+v2+`"}`)
	ctx := sdk.NewContext(context.Background(), c.Router().Decide(inbound))
	body, err := get(t, c.HTTPClient(), ctx, "http://shop/", nil)
	sdktest.Must(t, "call", err)
	if want := `v2|{"other":"x=1"}|eu|{"shop":"` + v2 + `"}`; body != want {
		t.Fatalf("call answered %q, want %q (n-d-address names the v2 instance; the headers travel on)", body, want)
	}
}

// TestRouteVectors: the SDK decides every route vector of
// docs/gray-vectors.json like the proxy, nginx's Lua and the Java class.
func TestRouteVectors(t *testing.T) {
	v := grayvectors.Load(t)
	for i, vec := range v.RouteVectors {
		r := sdk.NewRouter(sdk.RouterConfig{Edge: true})
		d := doc("vec", nil, vec.Split...)
		d.Bucketing.Salt = vec.Salt
		r.Set(d)
		req := httptest.NewRequest(http.MethodGet, "http://vec/", nil)
		if vec.Header != nil {
			req.Header["X-Gray-User"] = []string{*vec.Header}
		}
		if vec.Cookie != nil {
			req.Header["Cookie"] = []string{*vec.Cookie}
		}
		dec := r.Decide(req)
		if got, _ := dec.Version("vec"); got != vec.Version || dec.UserKey() != vec.Key {
			t.Errorf("route vector %d: %s for key %q, want %s for key %q", i, got, dec.UserKey(), vec.Version, vec.Key)
		}
	}
}
