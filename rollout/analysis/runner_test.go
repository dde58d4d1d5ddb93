package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
)

func f(v float64) *float64 { return &v }

// startDemo runs the real demoapp on a free port.
func startDemo(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := adaptertest.BuildDemoApp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, append([]string{"--version=v2", "--addr=" + addr}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.Eventually(t, 10*time.Second, "demoapp listens on "+addr, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	return "http://" + addr
}

func TestHTTPCheckAgainstDemoApp(t *testing.T) {
	testenv.IntegrationTest(t)
	healthy := startDemo(t)
	sick := startDemo(t, "--fail-health")
	ctx := context.Background()
	data := map[string]string{"App": "demo", "Version": "v2", "StableVersion": "v1"}
	for _, c := range []struct {
		name  string
		check spec.HTTPCheck
		ok    bool
		why   string
	}{
		{"healthy", spec.HTTPCheck{URL: healthy + "/healthz"}, true, ""},
		{"unhealthy", spec.HTTPCheck{URL: sick + "/healthz"}, false, "status 503, want 2xx"},
		{"expected status", spec.HTTPCheck{URL: sick + "/healthz", Status: 503}, true, ""},
		{"templated url", spec.HTTPCheck{URL: healthy + "/?version={{.Version}}"}, true, ""},
		{"refused", spec.HTTPCheck{URL: "http://127.0.0.1:1/healthz"}, false, "connection refused"},
	} {
		ok, why := Run(ctx, http.DefaultClient, spec.Check{Name: "c", HTTP: &c.check}, data)
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s: got %v %q, want %v ...%s...", c.name, ok, why, c.ok, c.why)
		}
	}
}

func TestJSONAndPrometheusChecks(t *testing.T) {
	// An HTTP server answering the way the Prometheus HTTP API documents
	// /api/v1/query (https://prometheus.io/docs/prometheus/latest/querying/api/).
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		switch q := r.URL.Query().Get("query"); {
		case strings.Contains(q, `version="v2"`) && strings.HasPrefix(q, "errors"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"version":"v2"},"value":[1700000000.1,"0.002"]}]}}`)
		case q == "scalar(1)":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"1"]}}`)
		case q == "empty":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		default:
			w.WriteHeader(400)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
		}
	}))
	defer prom.Close()
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"rates": []any{map[string]any{"p99": "0.250"}}, "ok": true}})
	}))
	defer metrics.Close()
	data := map[string]string{"App": "demo", "Version": "v2", "StableVersion": "v1"}
	for _, c := range []struct {
		name  string
		check spec.Check
		ok    bool
		why   string
	}{
		{"vector within max", spec.Check{Prometheus: &spec.PrometheusCheck{Address: prom.URL, Query: `errors{version="{{.Version}}"}`, Max: f(0.01)}}, true, "value 0.002"},
		{"vector above max", spec.Check{Prometheus: &spec.PrometheusCheck{Address: prom.URL, Query: `errors{version="{{.Version}}"}`, Max: f(0.001)}}, false, "above max 0.001"},
		{"scalar below min", spec.Check{Prometheus: &spec.PrometheusCheck{Address: prom.URL, Query: "scalar(1)", Min: f(2)}}, false, "below min 2"},
		{"no samples", spec.Check{Prometheus: &spec.PrometheusCheck{Address: prom.URL, Query: "empty", Max: f(1)}}, false, "no samples"},
		{"query error", spec.Check{Prometheus: &spec.PrometheusCheck{Address: prom.URL, Query: "bad(", Max: f(1)}}, false, "parse error"},
		{"json path", spec.Check{HTTP: &spec.HTTPCheck{URL: metrics.URL, JSONPath: "data.rates.0.p99", Max: f(0.3)}}, true, "value 0.25"},
		{"json path over", spec.Check{HTTP: &spec.HTTPCheck{URL: metrics.URL, JSONPath: "data.rates.0.p99", Max: f(0.2)}}, false, "above max"},
		{"json bool", spec.Check{HTTP: &spec.HTTPCheck{URL: metrics.URL, JSONPath: "data.ok", Min: f(1)}}, true, ""},
		{"json missing", spec.Check{HTTP: &spec.HTTPCheck{URL: metrics.URL, JSONPath: "data.nope", Max: f(1)}}, false, `no field "nope"`},
	} {
		ok, why := Run(context.Background(), http.DefaultClient, c.check, data)
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s: got %v %q, want %v ...%s...", c.name, ok, why, c.ok, c.why)
		}
	}
}

func TestRunnerKeepsResultsPerVersionAndNotifies(t *testing.T) {
	testenv.IntegrationTest(t)
	healthy := startDemo(t)
	notified := make(chan string, 100)
	r := New(Config{Notify: func(app string) { notified <- app }})
	defer r.Close()
	rel := &spec.Release{App: "demo", Strategy: spec.Strategy{Analysis: &spec.Analysis{
		Interval: spec.D(time.Second),
		Checks: []spec.Check{
			{Name: "up", HTTP: &spec.HTTPCheck{URL: healthy + "/healthz"}},
			{Name: "down", HTTP: &spec.HTTPCheck{URL: healthy + "/nope", Status: 200}},
		}}}}
	r.Ensure(rel, "v1", "v2")
	r.Ensure(rel, "v1", "v2") // idempotent: no second goroutine
	for i := 0; i < 2; i++ {
		select {
		case app := <-notified:
			if app != "demo" {
				t.Fatalf("notified %q", app)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no round of checks")
		}
	}
	res := r.Results("demo")
	if res["up"].Version != "v2" || len(res["up"].Runs) != 2 || !res["up"].Runs[1].OK {
		t.Fatalf("up: %+v", res["up"])
	}
	if len(res["down"].Runs) != 2 || res["down"].Runs[0].OK || !strings.Contains(res["down"].Runs[0].Message, "status 404") {
		t.Fatalf("down: %+v", res["down"])
	}
	// a new version starts a fresh history
	r.Ensure(rel, "v1", "v3")
	select {
	case <-notified:
	case <-time.After(10 * time.Second):
		t.Fatal("no round for v3")
	}
	if res := r.Results("demo"); res["up"].Version != "v3" || len(res["up"].Runs) != 1 {
		t.Fatalf("after v3: %+v", res["up"])
	}
	r.Stop("demo")
	if res := r.Results("demo"); res != nil {
		t.Fatalf("results after Stop: %v", res)
	}
}

// Measure returns the number a check measured, passing or not, so the
// console can chart it against the thresholds.
func TestMeasureReturnsTheValue(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data": {"errorRate": 0.3}}`))
	}))
	defer srv.Close()
	for _, c := range []struct {
		max float64
		ok  bool
	}{{0.5, true}, {0.1, false}} {
		max := c.max
		chk := spec.Check{Name: "errors", HTTP: &spec.HTTPCheck{URL: srv.URL, JSONPath: "data.errorRate", Max: &max}}
		ok, msg, v := Measure(context.Background(), srv.Client(), chk, nil)
		if ok != c.ok || v == nil || *v != 0.3 {
			t.Fatalf("max %g: ok %v, msg %q, value %v", c.max, ok, msg, v)
		}
	}
}
