package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// deploySystem plays an external deploy system behind the webhook backend:
// it runs whatever it is asked to, at once.
type deploySystem struct {
	mu       sync.Mutex
	replicas map[string]int
	posts    int
}

func (d *deploySystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		var want struct {
			Replicas map[string]int `json:"replicas"`
		}
		if err := json.NewDecoder(r.Body).Decode(&want); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		d.replicas = want.Replicas
		d.posts++
		w.WriteHeader(http.StatusAccepted)
	case http.MethodGet:
		var st struct {
			Instances []adapters.Instance `json:"instances"`
		}
		st.Instances = []adapters.Instance{}
		var versions []string
		for v := range d.replicas {
			versions = append(versions, v)
		}
		sort.Strings(versions)
		for _, v := range versions {
			for i := 0; i < d.replicas[v]; i++ {
				st.Instances = append(st.Instances, adapters.Instance{ID: fmt.Sprintf("%s-%d", v, i), Version: v, Ready: true})
			}
		}
		json.NewEncoder(w).Encode(st)
	}
}

func readyz(t *testing.T, g *graylanetest.Graylane) string {
	t.Helper()
	resp, err := http.Get(g.APIURL + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func TestEndToEndTwoReplicasFailOver(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	etcd := etcdtest.Start(t)
	cli := etcd.Client()
	sys := &deploySystem{}
	hook := httptest.NewServer(sys)
	t.Cleanup(hook.Close)

	opts := graylanetest.Options{
		Config: map[string]any{
			"etcd": map[string]any{"endpoints": etcd.Endpoints()},
			"ha":   map[string]any{"enabled": true, "ttl": "2s"},
		},
		Env: []string{"HOOK_SECRET=e2e-webhook-secret"},
	}
	a := graylanetest.Start(t, opts)
	b := graylanetest.Start(t, opts)
	if ra, rb := readyz(t, a), readyz(t, b); ra != "ok (leader)" || rb != "ok (standby)" {
		t.Fatalf("readyz: a %q, b %q", ra, rb)
	}
	doc := func(version string) string {
		return fmt.Sprintf(`app: billing
version: %s
replicas: 2
strategy:
  steps: [{setWeight: 50}, {pause: {}}, {setWeight: 100}]
  scaleDownDelay: 0s
backend:
  type: webhook
  webhook: {url: "%s/deploy", statusURL: "%s/status", secretEnv: HOOK_SECRET}
traffic: {type: none}
`, version, hook.URL, hook.URL)
	}
	if _, err := cli.Put(ctx, "/graylane/apps/billing", doc("v1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "billing", 60*time.Second, "v1 healthy", healthyAt("v1"))
	// the standby's event stream follows the leader's progress
	opened, sawCanary := make(chan struct{}), make(chan struct{})
	var once sync.Once
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go b.Client().Watch(wctx, "billing", func(m engine.Message) bool {
		once.Do(func() { close(opened) }) // the stream's first status: it is open
		if m.App != nil && m.App.Status.CanaryVersion == "v2" {
			close(sawCanary)
			return false
		}
		return true
	})
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("the standby's event stream never opened")
	}
	if _, err := cli.Put(ctx, "/graylane/apps/billing", doc("v2")); err != nil {
		t.Fatal(err)
	}
	// the standby serves the same view
	waitFor(t, b, "billing", 60*time.Second, "paused at step 2 (seen through the standby)", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Step == 1
	})

	select {
	case <-sawCanary:
	case <-time.After(30 * time.Second):
		t.Fatal("the standby's event stream never showed the canary v2")
	}
	// and lists it from the state records, paused, without a pass of its own
	testenv.Eventually(t, 30*time.Second, "the standby lists billing paused", func() error {
		l, err := b.Client().Apps(ctx, client.ListOptions{Phase: "Paused"})
		if err != nil {
			return err
		}
		return testenv.Check(len(l) == 1 && l[0].App == "billing" && l[0].CanaryVersion == "v2", "paused apps %+v", l)
	})

	a.Kill() // the leader dies; its lease expires after ha.ttl
	testenv.Eventually(t, 30*time.Second, "the standby takes over", func() error {
		r := readyz(t, b)
		return testenv.Check(r == "ok (leader)", "readyz %q", r)
	})
	if _, err := b.Client().Command(ctx, "billing", rollout.CmdPromote); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, "billing", 60*time.Second, "v2 healthy under the new leader", healthyAt("v2"))
	sys.mu.Lock()
	defer sys.mu.Unlock()
	if fmt.Sprint(sys.replicas) != "map[v2:2]" {
		t.Fatalf("deploy system runs %v", sys.replicas)
	}
}
