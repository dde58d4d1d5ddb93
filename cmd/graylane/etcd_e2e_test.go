package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/graylane/graylane/testsupport/testenv"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/graylane/graylane/testsupport/graylanetest"
)

// TestEndToEndEmbeddedEtcdQuotaAlarmOnReadyz: graylane's embedded etcd
// with a small quota (etcd.embedded.quotaBackendBytes) filled past it
// raises NOSPACE; /readyz answers 503 naming the alarm, and /metrics shows
// graylane_etcd_alarm{alarm="NOSPACE"} 1 (issue 13).
func TestEndToEndEmbeddedEtcdQuotaAlarmOnReadyz(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{
		"etcd": map[string]any{"embedded": map[string]any{"quotaBackendBytes": 2 << 20}},
	}})
	if got := readyz(t, g); !strings.HasPrefix(got, "ok") {
		t.Fatalf("/readyz before filling = %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	value := strings.Repeat("z", 256<<10)
	var err error
	for i := 0; i < 40 && err == nil; i++ {
		_, err = g.Etcd().Put(ctx, fmt.Sprintf("/fill/%d", i), value)
	}
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("filling a 2 MiB quota: last error %v, want %v", err, rpctypes.ErrNoSpace)
	}
	resp, err := http.Get(g.APIURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "NOSPACE") {
		t.Fatalf("/readyz = %d %s, want 503 naming the NOSPACE alarm", resp.StatusCode, body)
	}
	resp, err = http.Get(g.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `graylane_etcd_alarm{alarm="NOSPACE"} 1`) {
		t.Fatalf("/metrics lacks graylane_etcd_alarm{alarm=\"NOSPACE\"} 1:\n%s", grepLines(string(metrics), "graylane_etcd"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
