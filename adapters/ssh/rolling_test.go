package ssh_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/nginx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/nginxtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

func split(vw ...any) traffic.Split {
	var s traffic.Split
	for i := 0; i < len(vw); i += 2 {
		s.Weights = append(s.Weights, traffic.VersionWeight{Version: vw[i].(string), Weight: vw[i+1].(int)})
	}
	return s
}

// TestRollingReleaseBehindNginx rolls v1 -> v2 across 4 SSH hosts (the
// canary host first, then one host at a time) behind the nginx router,
// with the backend's notifications re-syncing nginx's upstreams, under
// continuous load: no request may fail.
func TestRollingReleaseBehindNginx(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, fixtureOpts{hosts: 4})
	ngx := nginxtest.Start(t, nginxtest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	router, err := nginx.New(nginx.Config{
		Binary: ngx.Binary, Prefix: ngx.Prefix, ConfFile: ngx.ConfFile, PIDFile: ngx.PIDFile, IncludeDir: ngx.IncludeDir,
		StatusAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Instances: f.backend, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wire: host changes -> router.Sync (the way cmd/ wires Notifier).
	notes := make(chan string, 64)
	syncErrs := make(chan error, 64)
	f.backend.Notify(func(app string) {
		select {
		case notes <- app:
		default:
		}
	})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case app := <-notes:
				if err := router.Sync(ctx, app); err != nil && ctx.Err() == nil {
					syncErrs <- err
				}
			}
		}
	}()
	withTraffic := func(r *spec.Release) *spec.Release {
		r.Traffic = &spec.Traffic{Type: "nginx", Nginx: &spec.NginxTraffic{Listen: listen}}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	f.artifact("v1", nil)
	f.artifact("v2", nil)
	rel1 := withTraffic(f.release("v1", fixtureOpts{}))
	f.deploy(ctx, rel1, traffic.Replicas{"v1": 4})
	if err := router.SetWeights(ctx, rel1, split("v1", 100)); err != nil {
		t.Fatal(err)
	}
	load := loadgen.Start(t, loadgen.Config{URL: "http://" + listen + "/", Workers: 3})

	rel2 := withTraffic(f.release("v2", fixtureOpts{}))
	rep := f.deploy(ctx, rel2, traffic.Replicas{"v1": 3, "v2": 1})
	if len(rep.Hosts) != 1 || rep.Hosts[0].Host != "host0" {
		t.Fatalf("canary step moved %+v, want only the canary host0", rep.Hosts)
	}
	if err := router.SetWeights(ctx, rel2, split("v2", 25, "v1", 75)); err != nil {
		t.Fatal(err)
	}
	before := load.Counts()
	testenv.Eventually(t, 30*time.Second, "200 requests per version in the canary phase", func() error {
		now := load.Counts()
		if now["v2"]-before["v2"] < 200 || now["v1"]-before["v1"] < 200 {
			return fmt.Errorf("canary phase: %v", now)
		}
		return nil
	})
	rep = f.deploy(ctx, rel2, traffic.Replicas{"v2": 4})
	if len(rep.Hosts) != 3 {
		t.Fatalf("rollout moved %d hosts, want 3", len(rep.Hosts))
	}
	for i, r := range rep.Hosts {
		if r.Batch != i || r.Err != nil {
			t.Fatalf("host %s: batch %d, err %v; want one host per batch", r.Host, r.Batch, r.Err)
		}
		t.Logf("%s: upload %v (%d files sent, %d reused), switch+restart %v, health %v", r.Host, r.Stage, r.Uploaded, r.Reused, r.Switch, r.Health)
	}
	if err := router.SetWeights(ctx, rel2, split("v2", 100)); err != nil {
		t.Fatal(err)
	}
	// New connections reach only v2 now.
	for range 40 {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + listen + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v := resp.Header.Get("X-Version"); v != "v2" {
			t.Fatalf("after the rollout a request reached %q", v)
		}
	}
	res := load.Stop()
	cancel()
	select {
	case err := <-syncErrs:
		t.Fatalf("router sync: %v", err)
	default:
	}
	t.Logf("%d requests during the rollout, %d failed; by version %v", res.OK+res.Failed, res.Failed, load.Counts())
	if res.Failed != 0 {
		t.Fatalf("%d requests failed during the rolling release, e.g. %v", res.Failed, res.Errors)
	}
	if got := f.currents(); !reflect.DeepEqual(got, []string{"v2", "v2", "v2", "v2"}) {
		t.Fatalf("currents = %v", got)
	}
}
