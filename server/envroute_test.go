package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// /api/v1/envs/{env}/... reaches that environment's API as /api/v1/...;
// everything else the default one; an unknown environment is 404 naming
// the known ones.
func TestRouteByEnvironment(t *testing.T) {
	echo := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, name+" "+r.URL.Path) })
	}
	ts := httptest.NewServer(Route(echo("default"), map[string]http.Handler{"dev": echo("dev"), "prod": echo("prod")}))
	defer ts.Close()
	for path, want := range map[string]string{
		"/api/v1/envs/prod/apps/shop":        "prod /api/v1/apps/shop",
		"/api/v1/envs/dev/apps/shop/version": "dev /api/v1/apps/shop/version",
		"/api/v1/apps/shop":                  "default /api/v1/apps/shop",
		"/metrics":                           "default /metrics",
		"/api/v1/envs/qa/apps/shop":          `{"error":"no environment \"qa\" (environments: dev, prod)"}`,
	} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}
