package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// probe exits 0 on a healthy instance, 1 on an unhealthy or absent one,
// 2 on bad arguments: what a Docker HEALTHCHECK reads.
func TestProbe(t *testing.T) {
	healthy := httptest.NewServer(newHandler(options{version: "v1"}))
	defer healthy.Close()
	sick := httptest.NewServer(newHandler(options{version: "v1", failHealth: true}))
	defer sick.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()

	for _, tc := range []struct {
		args []string
		want int
		msg  string
	}{
		{[]string{"--url", healthy.URL + "/healthz"}, 0, ""},
		{[]string{"--url", sick.URL + "/healthz"}, 1, "503"},
		{[]string{"--url", goneURL + "/healthz", "--timeout", "1s"}, 1, "connection refused"},
		{[]string{"--nope"}, 2, "flag provided but not defined"},
	} {
		var stderr strings.Builder
		if got := probe(tc.args, &stderr); got != tc.want || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("probe %v = %d (stderr %q), want %d with %q", tc.args, got, stderr.String(), tc.want, tc.msg)
		}
	}
}
