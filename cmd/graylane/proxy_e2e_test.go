package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
)

// demoFleet plays an external deploy system behind the webhook backend
// that runs real demoapp processes: it starts what it is asked to, reports
// each instance ready once its /healthz answers, and takes an instance
// away the way a well-behaved deploy system does: reported not ready
// first, stopped a little later.
type demoFleet struct {
	t   *testing.T
	bin string

	mu   sync.Mutex
	runs map[string][]*demoRun // version -> instances
}

type demoRun struct {
	id, version, addr string
	cmd               *exec.Cmd
	ready, stopping   bool
	exited            bool          // set under demoFleet.mu once Wait returned
	done              chan struct{} // closed once Wait returned
}

func (f *demoFleet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		var want struct {
			Replicas map[string]int `json:"replicas"`
		}
		if err := json.NewDecoder(r.Body).Decode(&want); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.converge(want.Replicas)
		w.WriteHeader(http.StatusAccepted)
	case http.MethodGet:
		json.NewEncoder(w).Encode(map[string]any{"instances": f.instances()})
	}
}

func (f *demoFleet) converge(want map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for v := range f.runs {
		if _, ok := want[v]; !ok {
			want[v] = 0
		}
	}
	for v, n := range want {
		live := 0
		for _, r := range f.runs[v] {
			if !r.stopping {
				live++
			}
		}
		for ; live < n; live++ {
			f.runs[v] = append(f.runs[v], f.start(v, len(f.runs[v])))
		}
		for i := len(f.runs[v]) - 1; i >= 0 && live > n; i-- {
			if r := f.runs[v][i]; !r.stopping {
				r.stopping, r.ready = true, false
				live--
				go func() {
					time.Sleep(1500 * time.Millisecond) // the proxy resyncs every 200ms
					r.cmd.Process.Kill()
				}()
			}
		}
	}
}

func (f *demoFleet) start(version string, n int) *demoRun {
	port := testenv.FreePort(f.t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(f.bin, "--version="+version, "--addr="+addr)
	if err := cmd.Start(); err != nil {
		f.t.Errorf("start demoapp: %v", err)
	}
	r := &demoRun{id: fmt.Sprintf("%s-%d", version, n), version: version, addr: addr, cmd: cmd, done: make(chan struct{})}
	if cmd.Process == nil {
		r.exited = true
		close(r.done)
		return r
	}
	go func() { // the only Wait: reading cmd.ProcessState elsewhere would race with it
		cmd.Wait()
		f.mu.Lock()
		r.exited = true
		f.mu.Unlock()
		close(r.done)
	}()
	f.t.Cleanup(func() {
		cmd.Process.Kill()
		<-r.done
	})
	return r
}

func (f *demoFleet) instances() []adapters.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []adapters.Instance{}
	var versions []string
	for v := range f.runs {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		for _, r := range f.runs[v] {
			if r.stopping && r.exited {
				continue
			}
			if !r.ready && !r.stopping {
				if c, err := net.DialTimeout("tcp", r.addr, 200*time.Millisecond); err == nil {
					c.Close()
					r.ready = true
				}
			}
			out = append(out, adapters.Instance{ID: r.id, Version: r.version, Addr: r.addr, Ready: r.ready})
		}
	}
	return out
}

// The built-in proxy in front of a backend that is not the process
// backend: a webhook deploy system running real demoapps. A canary under
// load through the proxy loses no request, and the canary step splits the
// traffic.
func TestEndToEndProxyWithWebhookBackend(t *testing.T) {
	testenv.IntegrationTest(t)
	bin := graylanetest.Binaries(t)
	fleet := &demoFleet{t: t, bin: filepath.Join(bin, "demoapp"), runs: map[string][]*demoRun{}}
	hook := httptest.NewServer(fleet)
	t.Cleanup(hook.Close)
	g := graylanetest.Start(t, graylanetest.Options{
		Config: map[string]any{"proxy": map[string]any{"resync": "200ms"}},
		Env:    []string{"HOOK_SECRET=e2e-webhook-secret"},
	})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	doc := func(version string) string {
		return fmt.Sprintf(`app: hooked
version: %s
replicas: 2
strategy:
  steps: [{setWeight: 50}, {pause: {duration: 4s}}, {setWeight: 100}]
  scaleDownDelay: 1s
backend:
  type: webhook
  webhook: {url: "%s/deploy", statusURL: "%s/status", secretEnv: HOOK_SECRET}
traffic:
  type: proxy
  proxy: {listen: "%s"}
`, version, hook.URL, hook.URL, listen)
	}
	g.PutSpec("hooked", doc("v1"))
	waitFor(t, g, "hooked", 60*time.Second, "v1 healthy behind the proxy", healthyAt("v1"))
	load := loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 4})
	g.PutSpec("hooked", doc("v2"))
	waitFor(t, g, "hooked", 90*time.Second, "v2 healthy", healthyAt("v2"))
	waitFor(t, g, "hooked", 30*time.Second, "v1 gone", func(v engine.AppView) bool {
		for _, in := range v.Status.Instances {
			if in.Version == "v1" {
				return false
			}
		}
		return v.Status.Phase == rollout.Healthy
	})
	time.Sleep(500 * time.Millisecond)
	samples := load.Stop().Samples
	if f := loadgen.Failures(samples); len(f) > 0 {
		t.Fatalf("%d of %d requests through the proxy failed; first %+v", len(f), len(samples), f[0])
	}
	seen := map[string]int{}
	for _, s := range samples {
		seen[s.Version]++
	}
	t.Logf("%d requests through the proxy in front of the webhook backend, 0 failed: %v", len(samples), seen)
	if seen["v1"] == 0 || seen["v2"] == 0 {
		t.Fatalf("the proxy served %v: want both versions during the canary", seen)
	}
}
