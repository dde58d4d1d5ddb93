package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/graylane/graylane/adapters"
)

// DeploySystem plays an external deploy system behind graylane's webhook
// backend for many apps: it runs whatever it is asked to, at once (POST
// /deploy), and reports it as ready (GET /apps/{app}/status), so what a
// test measures is graylane's own cost.
type DeploySystem struct {
	URL string

	mu       sync.Mutex
	replicas map[string]map[string]int // app -> version -> instances
	checks   int
}

// NewDeploySystem starts one on a free loopback port.
func NewDeploySystem(t testing.TB) *DeploySystem {
	d := &DeploySystem{replicas: map[string]map[string]int{}}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	d.URL = srv.URL
	return d
}

// ServeHTTP implements the deploy system's two routes.
func (d *DeploySystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/deploy":
		var want struct {
			App      string         `json:"app"`
			Replicas map[string]int `json:"replicas"`
		}
		if err := json.NewDecoder(r.Body).Decode(&want); err != nil || want.App == "" {
			http.Error(w, "want a desired state", http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.replicas[want.App] = want.Replicas
		d.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/apps/") && strings.HasSuffix(r.URL.Path, "/status"):
		app := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/apps/"), "/status")
		d.mu.Lock()
		want := d.replicas[app]
		var versions []string
		for v := range want {
			versions = append(versions, v)
		}
		sort.Strings(versions)
		st := struct {
			App       string              `json:"app"`
			Instances []adapters.Instance `json:"instances"`
		}{App: app, Instances: []adapters.Instance{}}
		for _, v := range versions {
			for i := 0; i < want[v]; i++ {
				st.Instances = append(st.Instances, adapters.Instance{
					ID: fmt.Sprintf("%s-%s-%d", app, v, i), Version: v, Ready: true,
					Addr: fmt.Sprintf("10.1.%d.%d:8080", len(app)%200, 10+i),
					Meta: map[string]string{"zone": []string{"eu-1a", "eu-1b", "eu-1c"}[i%3]},
				})
			}
		}
		d.mu.Unlock()
		_ = json.NewEncoder(w).Encode(st)
	case r.Method == http.MethodGet && r.URL.Path == "/metrics":
		// an analysis check's source: an error rate that wanders below 5 %
		d.mu.Lock()
		d.checks++
		n := d.checks
		d.mu.Unlock()
		_, _ = fmt.Fprintf(w, `{"errorRate": %.4f}`, 0.012+0.004*float64(n%7)+0.002*float64(n%3))
	default:
		http.NotFound(w, r)
	}
}

// WithAnalysis adds an HTTP analysis check on the deploy system's
// /metrics (error rate at most 5 %, every second) to a Spec.
func (d *DeploySystem) WithAnalysis(spec string) string {
	return strings.Replace(spec, "  scaleDownDelay: 0s\n", fmt.Sprintf(`  scaleDownDelay: 0s
  analysis:
    interval: 1s
    checks:
      - name: error-rate
        http: {url: "%s/metrics", jsonPath: errorRate, max: 0.05}
`, d.URL), 1)
}

// Spec is a release spec of app on the webhook backend against d.
func (d *DeploySystem) Spec(app, version string, replicas int, steps string) string {
	return fmt.Sprintf(`app: %s
version: %s
replicas: %d
strategy:
  type: canary
  steps: %s
  scaleDownDelay: 0s
backend:
  type: webhook
  webhook: {url: "%s/deploy", statusURL: "%s/apps/{{.App}}/status", secretEnv: HOOK_SECRET, timeout: 5s}
traffic: {type: none}
`, app, version, replicas, steps, d.URL, d.URL)
}
