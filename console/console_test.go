package console

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, gz bool) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	rd := r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = z
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The embedded console answers its routes with index.html (never cached),
// its hashed assets with a year of caching (gzipped when asked), and 404
// for a missing asset; every answer carries a same-origin-only CSP.
func TestHandlerServesTheEmbeddedConsole(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/apps/shop", "/login"} {
		r := get(t, h, p, false)
		b := body(t, r)
		if r.StatusCode != 200 || !strings.Contains(b, `<div id="root">`) || r.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: %d %q %q", p, r.StatusCode, r.Header.Get("Cache-Control"), b)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("%s: CSP %q", p, csp)
		}
	}
	index := body(t, get(t, h, "/", false))
	m := regexp.MustCompile(`/assets/index-[A-Za-z0-9_-]+\.js`).FindString(index)
	if m == "" {
		t.Fatalf("index.html names no script: %s", index)
	}
	r := get(t, h, m, true)
	if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") ||
		!strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("%s: %d %v", m, r.StatusCode, r.Header)
	}
	if js := body(t, r); len(js) < 1000 {
		t.Fatalf("%s: %d bytes", m, len(js))
	}
	if r := get(t, h, "/assets/missing-123.js", false); r.StatusCode != 404 {
		t.Fatalf("missing asset: %d", r.StatusCode)
	}
	// nothing in the built console loads from another origin
	if strings.Contains(index, "http://") || strings.Contains(index, "https://") {
		t.Fatalf("index.html refers to another origin: %s", index)
	}
}
