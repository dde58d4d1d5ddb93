package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/graylane/graylane/testsupport/testenv"
)

// loadOpenAPI parses and validates the generated document with
// kin-openapi.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	b, err := json.Marshal(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// TestOpenAPICoversTheRouter: every route of the gin router is in the
// document, and every documented operation is a route.
func TestOpenAPICoversTheRouter(t *testing.T) {
	doc := loadOpenAPI(t)
	s := New(Config{})
	served := map[string]bool{}
	for _, r := range s.Router().Routes() {
		key := r.Method + " " + openAPIPath(r.Path)
		served[key] = true
		item := doc.Paths.Find(openAPIPath(r.Path))
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("%s %s is served but not in the OpenAPI document", r.Method, r.Path)
		}
	}
	documented := 0
	for p, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			documented++
			if !served[m+" "+p] {
				t.Errorf("%s %s is documented but not served", m, p)
			}
		}
	}
	if documented < 30 || len(served) != documented {
		t.Errorf("%d documented operations, %d routes", documented, len(served))
	}
}

// TestOpenAPIDescribesTheAnswers runs a scripted session against a real
// API (etcd centre, records, audit, config-in-step) and validates every
// answer against the document with kin-openapi.
func TestOpenAPIDescribesTheAnswers(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newFullEnv(t, Token{Name: "ops", Secret: "w", Role: RoleWrite}, Token{Name: "viewer", Secret: "r", Role: RoleRead})
	doc := loadOpenAPI(t)
	doc.Servers = openapi3.Servers{{URL: e.url}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	call := func(token, method, path, ctype, body string, want int) []byte {
		t.Helper()
		code, b, h := e.raw(token, method, path, ctype, body)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
		}
		req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in the document: %v", method, path, err)
		}
		validate(t, route, params, req, code, h, b)
		checked[method+" "+route.Path] = true
		return b
	}
	w, r := "w", "r"
	call(r, "GET", "/api/v1/openapi.json", "", "", 200)
	call(r, "GET", "/api/v1/apps", "", "", 200)
	call(w, "PUT", "/api/v1/apps/demo?dryRun=true", "application/yaml", configSpec, 200)
	call(w, "PUT", "/api/v1/apps/demo?dryRun=true", "application/yaml", strings.Replace(configSpec, "replicas: 1", "replicas: 0", 1), 400)
	call(w, "PUT", "/api/v1/apps/demo", "application/yaml", configSpec, 200)
	e.waitPhase("demo", "Healthy")
	call(r, "GET", "/api/v1/apps", "", "", 200)
	call(r, "GET", "/api/v1/apps/demo", "", "", 200)
	call(w, "PUT", "/api/v1/apps/demo/version?dryRun=true", "application/json", `{"version":"v2"}`, 200)
	call(w, "PUT", "/api/v1/apps/demo/version", "application/json", `{"version":"v2"}`, 200)
	call(w, "PUT", "/api/v1/apps/demo/version", "application/json", `{"version":"v 2"}`, 400)
	e.waitHealthyAt("demo", "v2")
	call(w, "POST", "/api/v1/apps/demo/abort", "", "", 409)
	call(w, "POST", "/api/v1/apps/demo/rollback", "application/json", `{"revision": 1}`, 200)
	e.waitHealthyAt("demo", "v1")
	call(w, "POST", "/api/v1/apps/demo/pause", "", "", 200)
	call(w, "POST", "/api/v1/apps/demo/resume", "", "", 200)
	call(w, "POST", "/api/v1/apps/demo/promote", "", "", 409)
	call(r, "GET", "/api/v1/apps/demo/config", "", "", 200)
	call(r, "GET", "/api/v1/apps/demo/config/history", "", "", 200)
	call(r, "GET", "/api/v1/apps/demo/config/history/v1", "", "", 200)
	call(r, "GET", "/api/v1/apps/demo/config/history/v1/files/app.yaml", "", "", 200)
	call(r, "GET", "/api/v1/apps/demo/revisions", "", "", 200)
	call(r, "GET", "/api/v1/apps/demo/revisions/2", "", "", 200)
	call(r, "GET", "/api/v1/apps/demo/revisions/99", "", "", 404)
	call(r, "GET", "/api/v1/apps/demo/stats", "", "", 200)
	call(r, "GET", "/api/v1/stats", "", "", 200)
	call(r, "GET", "/api/v1/audit?app=demo", "", "", 200)
	call(r, "POST", "/api/v1/apps/demo/promote", "", "", 403)
	call("", "GET", "/api/v1/apps", "", "", 401)
	call(r, "GET", "/api/v1/apps/demo/gray", "", "", 501)
	call(w, "DELETE", "/api/v1/apps/demo", "", "", 200)
	call(r, "GET", "/healthz", "", "", 200)
	if len(checked) < 20 {
		t.Errorf("only %d operations checked", len(checked))
	}
	t.Logf("%d operations' answers validated against the document", len(checked))
}

func validate(t *testing.T, route *routers.Route, params map[string]string, req *http.Request, code int, h http.Header, body []byte) {
	t.Helper()
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: code, Header: h, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s → %d does not match the document: %v\nbody: %.600s", req.Method, req.URL.Path, code, err, body)
	}
}
