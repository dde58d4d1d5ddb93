package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/apollo/openapi"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

const (
	appID  = "oa-app"
	nsName = "releases"
	token  = "oa-token"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder forwards to the real server and keeps every request body.
type recorder struct {
	mu     sync.Mutex
	bodies map[string][]string // "METHOD path" -> bodies
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	r.mu.Lock()
	k := req.Method + " " + req.URL.Path
	r.bodies[k] = append(r.bodies[k], string(b))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) last(method, path string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	bs := r.bodies[method+" /openapi/v1"+path]
	if len(bs) == 0 {
		return ""
	}
	return bs[len(bs)-1]
}

// setup starts a test Apollo with an app, a namespace and a token granted
// on the app, and a client that records its requests.
func setup(t *testing.T) (*apolloserver.Server, *openapi.Client, openapi.Namespace, *recorder) {
	t.Helper()
	srv := apolloserver.New(apolloserver.Options{})
	must(t, srv.Start())
	t.Cleanup(srv.Close)
	must(t, srv.CreateApp(appID, ""))
	_, err := srv.CreateNamespace(appID, nsName, apolloserver.FormatProperties)
	must(t, err)
	must(t, srv.CreateToken(token))
	must(t, srv.GrantApp(token, appID))
	rec := &recorder{bodies: map[string][]string{}}
	c, err := openapi.New(openapi.Config{PortalURL: srv.PortalURL(), Token: token, HTTPClient: &http.Client{Transport: rec}})
	must(t, err)
	return srv, c, openapi.Namespace{AppID: appID, Cluster: "default", Name: nsName}, rec
}

func TestItemsAndReleases(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv, c, ns, _ := setup(t)
	ctx := ctxT(t)

	if _, ok, err := c.LatestRelease(ctx, ns); ok || err != nil {
		t.Fatalf("LatestRelease of an unreleased namespace: ok %v, err %v", ok, err)
	}
	must(t, c.CreateItem(ctx, ns, openapi.Item{Key: "a", Value: "1", Comment: "first"}))
	if err := c.CreateItem(ctx, ns, openapi.Item{Key: "a", Value: "2"}); !errors.Is(err, openapi.ErrBadRequest) || !strings.Contains(err.Error(), "item already exists") {
		t.Fatalf("CreateItem of an existing key = %v, want a 400", err)
	}
	must(t, c.UpdateItem(ctx, ns, openapi.Item{Key: "a", Value: "2", Comment: "first"}, false))
	must(t, c.UpdateItem(ctx, ns, openapi.Item{Key: "b", Value: "x"}, true))
	if err := c.UpdateItem(ctx, ns, openapi.Item{Key: "c", Value: "x"}, false); !errors.Is(err, openapi.ErrNotFound) {
		t.Fatalf("UpdateItem of a missing key without createIfNotExists = %v, want 404", err)
	}
	it, err := c.Item(ctx, ns, "a")
	if err != nil || it.Value != "2" || it.Comment != "first" || it.CreatedBy != openapi.DefaultOperator {
		t.Fatalf("Item = %+v, %v", it, err)
	}
	if _, err := c.Item(ctx, ns, "nope"); !errors.Is(err, openapi.ErrNotFound) {
		t.Fatalf("Item of a missing key = %v, want 404", err)
	}
	for i := range 60 { // more than one page
		must(t, c.UpdateItem(ctx, ns, openapi.Item{Key: fmt.Sprintf("k%02d", i), Value: "v"}, true))
	}
	items, err := c.Items(ctx, ns)
	if err != nil || len(items) != 62 {
		t.Fatalf("Items = %d items, %v; want 62", len(items), err)
	}

	r1, err := c.Publish(ctx, ns, openapi.ReleaseRequest{Title: "first", Comment: "c"})
	if err != nil || r1.Title != "first" || r1.Configurations["a"] != "2" || r1.ID == 0 {
		t.Fatalf("Publish = %+v, %v", r1, err)
	}
	must(t, c.DeleteItem(ctx, ns, "b"))
	if err := c.DeleteItem(ctx, ns, "b"); !errors.Is(err, openapi.ErrNotFound) {
		t.Fatalf("DeleteItem of a missing key = %v, want 404", err)
	}
	r2, err := c.Publish(ctx, ns, openapi.ReleaseRequest{Title: "second"})
	must(t, err)
	if _, ok := r2.Configurations["b"]; ok {
		t.Fatal("deleted item still released")
	}
	latest, ok, err := c.LatestRelease(ctx, ns)
	if err != nil || !ok || latest.ID != r2.ID {
		t.Fatalf("LatestRelease = %+v, %v, %v", latest, ok, err)
	}
	must(t, c.Rollback(ctx, r2.ID))
	if latest, _, _ := c.LatestRelease(ctx, ns); latest.ID != r1.ID || latest.Configurations["b"] != "x" {
		t.Fatalf("after rollback the latest release is %d %v", latest.ID, latest.Configurations["b"])
	}
	info, err := c.Namespace(ctx, ns)
	if err != nil || info.Format != "properties" || len(info.Items) < 61 {
		t.Fatalf("Namespace = %s %d items, %v", info.Format, len(info.Items), err)
	}
	if r := srv.ReleaseHistory(appID, "default", nsName); len(r) == 0 || r[len(r)-1].Operator != openapi.DefaultOperator {
		t.Fatalf("release history %+v", r)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv, c, ns, _ := setup(t)
	ctx := ctxT(t)
	must(t, srv.CreateToken("ungranted"))
	cases := []struct {
		name   string
		client openapi.Config
		call   func(*openapi.Client) error
		want   error
		status int
	}{
		{"unknown token", openapi.Config{Token: "who"}, func(c *openapi.Client) error { _, err := c.Items(ctx, ns); return err }, openapi.ErrUnauthorized, 401},
		{"no grant", openapi.Config{Token: "ungranted"}, func(c *openapi.Client) error {
			return c.UpdateItem(ctx, ns, openapi.Item{Key: "a", Value: "1"}, true)
		}, openapi.ErrForbidden, 403},
		{"no grant to branch", openapi.Config{Token: "ungranted"}, func(c *openapi.Client) error { _, err := c.CreateBranch(ctx, ns); return err }, openapi.ErrForbidden, 403},
		{"missing namespace", openapi.Config{Token: token}, func(c *openapi.Client) error {
			_, err := c.Publish(ctx, openapi.Namespace{AppID: appID, Cluster: "default", Name: "nope"}, openapi.ReleaseRequest{Title: "t"})
			return err
		}, openapi.ErrNotFound, 404},
		{"unknown operator", openapi.Config{Token: token, Operator: "ghost"}, func(c *openapi.Client) error {
			_, err := c.Publish(ctx, ns, openapi.ReleaseRequest{Title: "t"})
			return err
		}, openapi.ErrBadRequest, 400},
		{"empty title", openapi.Config{Token: token}, func(c *openapi.Client) error {
			_, err := c.Publish(ctx, ns, openapi.ReleaseRequest{})
			return err
		}, openapi.ErrBadRequest, 400},
		{"unknown env", openapi.Config{Token: token, Env: "MARS"}, func(c *openapi.Client) error { _, err := c.Items(ctx, ns); return err }, openapi.ErrServer, 500},
	}
	for _, tc := range cases {
		tc.client.PortalURL = srv.PortalURL()
		cl, err := openapi.New(tc.client)
		must(t, err)
		err = tc.call(cl)
		var e *openapi.Error
		if !errors.Is(err, tc.want) || !errors.As(err, &e) || e.StatusCode != tc.status {
			t.Errorf("%s: err = %v, want %v with status %d", tc.name, err, tc.want, tc.status)
		}
	}

	// Rate limit: 1 request per second after the 1 s warm-up.
	must(t, srv.SetTokenRateLimit(token, 1))
	testenv.Eventually(t, 10*time.Second, "a 429 under a 1/s limit", func() error {
		_, err := c.Items(ctx, ns)
		return testenv.Check(errors.Is(err, openapi.ErrRateLimited), "Items: %v", err)
	})
	must(t, srv.SetTokenRateLimit(token, 0))

	// Portal down.
	srv.Stop()
	if _, err := c.Items(ctx, ns); !errors.Is(err, openapi.ErrUnavailable) {
		t.Fatalf("portal down: err = %v, want ErrUnavailable", err)
	}
}

func TestGrayBranchLifecycle(t *testing.T) {
	testenv.IntegrationTest(t)
	t.Parallel()
	srv, c, ns, rec := setup(t)
	ctx := ctxT(t)
	must(t, srv.SetItem(appID, "default", nsName, "demo", "v1"))
	must(t, srv.SetItem(appID, "default", nsName, "keep", "k"))
	_, err := srv.Publish(appID, "default", nsName, "master")
	must(t, err)

	if _, ok, err := c.Branch(ctx, ns); ok || err != nil {
		t.Fatalf("Branch before creating one: ok %v, err %v", ok, err)
	}
	branch, err := c.CreateBranch(ctx, ns)
	must(t, err)
	if name, ok := srv.Branch(appID, "default", nsName); !ok || name != branch {
		t.Fatalf("server branch %q, client got %q", name, branch)
	}
	if _, ok, err := c.GrayRules(ctx, ns, branch); ok || err != nil {
		t.Fatalf("GrayRules before any: ok %v, err %v", ok, err)
	}
	must(t, c.SetGrayRules(ctx, ns, branch, openapi.GrayRule{ClientLabelList: []string{"canary"}}))
	// Both lists are always sent, and the app id defaults to the namespace's.
	var body struct {
		RuleItems []map[string]json.RawMessage `json:"ruleItems"`
	}
	must(t, json.Unmarshal([]byte(rec.last("PUT", "/envs/DEV/apps/"+appID+"/clusters/default/namespaces/"+nsName+"/branches/"+branch+"/rules")), &body))
	if len(body.RuleItems) != 1 || string(body.RuleItems[0]["clientIpList"]) != "[]" || string(body.RuleItems[0]["clientLabelList"]) != `["canary"]` || string(body.RuleItems[0]["clientAppId"]) != `"`+appID+`"` {
		t.Fatalf("rules sent: %+v", body)
	}

	bns := ns.Branch(branch)
	must(t, c.UpdateItem(ctx, bns, openapi.Item{Key: "demo", Value: "v2"}, true))
	must(t, c.UpdateItem(ctx, bns, openapi.Item{Key: "extra", Value: "e"}, true))
	gray, err := c.GrayPublish(ctx, ns, branch, openapi.ReleaseRequest{Title: "gray v2"})
	if err != nil || gray.Cluster != branch || gray.Configurations["demo"] != "v2" || gray.Configurations["keep"] != "k" {
		t.Fatalf("GrayPublish = %+v, %v", gray, err)
	}
	del, err := c.GrayDelPublish(ctx, ns, branch, openapi.ReleaseRequest{Title: "gray without keep"}, []string{"keep"})
	if err != nil || del.Configurations["demo"] != "v2" {
		t.Fatalf("GrayDelPublish = %+v, %v", del, err)
	}
	if _, ok := del.Configurations["keep"]; ok {
		t.Fatal("gray-del release still has keep")
	}
	b, ok, err := c.Branch(ctx, ns)
	if err != nil || !ok || b.Cluster != branch || !slices.ContainsFunc(b.Items, func(it openapi.Item) bool { return it.Key == "demo" && it.Value == "v2" }) {
		t.Fatalf("Branch = %+v, %v, %v", b, ok, err)
	}

	merged, err := c.Merge(ctx, ns, branch, openapi.ReleaseRequest{Title: "merge v2"}, true)
	if err != nil || merged.Cluster != "default" || merged.Configurations["demo"] != "v2" || merged.Configurations["extra"] != "e" {
		t.Fatalf("Merge = %+v, %v", merged, err)
	}
	if _, ok, err := c.Branch(ctx, ns); ok || err != nil {
		t.Fatalf("branch kept after merge with deleteBranch: %v", err)
	}

	// Abandon a branch.
	branch2, err := c.CreateBranch(ctx, ns)
	must(t, err)
	must(t, c.UpdateItem(ctx, ns.Branch(branch2), openapi.Item{Key: "demo", Value: "v3"}, true))
	must(t, c.DeleteBranch(ctx, ns, branch2))
	if _, ok := srv.Branch(appID, "default", nsName); ok {
		t.Fatal("branch still there after DeleteBranch")
	}
	if err := c.DeleteBranch(ctx, ns, branch2); err == nil {
		t.Fatal("deleting a deleted branch succeeded")
	}
	if latest, _, _ := c.LatestRelease(ctx, ns); latest.Configurations["demo"] != "v2" {
		t.Fatalf("master demo = %q after abandoning", latest.Configurations["demo"])
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []openapi.Config{
		{Token: "t"},
		{PortalURL: "ftp://x", Token: "t"},
		{PortalURL: "http://x"},
	} {
		if _, err := openapi.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	c, err := openapi.New(openapi.Config{PortalURL: "http://portal:8070/", Token: "t"})
	if err != nil || c.Env() != openapi.DefaultEnv || c.Operator() != openapi.DefaultOperator {
		t.Fatalf("New with defaults: %v", err)
	}
}
