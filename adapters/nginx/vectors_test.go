package nginx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/nginx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/grayvectors"
	"github.com/graylane/graylane/testsupport/nginxtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// appInstances lists one instance per version, for every app.
type appInstances map[string]string // version -> addr

func (a appInstances) Observe(context.Context, string) ([]adapters.Instance, error) {
	var out []adapters.Instance
	for v, addr := range a {
		out = append(out, adapters.Instance{ID: v, Version: v, Addr: addr, Ready: true})
	}
	return out, nil
}

// TestRouteVectors: a real nginx running graylane's files routes every
// route vector of docs/gray-vectors.json to its version: its Lua computes
// the bucket of docs/gray.md bit for bit (one app per salt and split).
func TestRouteVectors(t *testing.T) {
	testenv.IntegrationTest(t)
	v := grayvectors.Load(t)
	ngx := nginxtest.Start(t, nginxtest.Options{WorkerProcesses: 1})
	src := appInstances{}
	for _, ver := range []string{"v1", "v2", "v3"} {
		src[ver] = startApp(t, ver)
	}
	r, err := nginx.New(nginx.Config{
		Binary: ngx.Binary, Prefix: ngx.Prefix, ConfFile: ngx.ConfFile, IncludeDir: ngx.IncludeDir, PIDFile: ngx.PIDFile,
		StatusAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Instances: src, ErrorLog: ngx.ErrorLog, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	listen := map[string]string{} // salt+split -> address
	for _, vec := range v.RouteVectors {
		sj, _ := json.Marshal(vec.Split)
		k := vec.Salt + string(sj)
		if listen[k] != "" {
			continue
		}
		listen[k] = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		rel, err := spec.Parse([]byte(fmt.Sprintf("app: vec%d\nversion: v1\nbackend: {type: process, process: {command: [x]}}\n"+
			"traffic: {type: nginx, nginx: {listen: %q}}\ngray: {salt: %s}\n", len(listen), listen[k], vec.Salt)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = r.SetWeights(ctx, rel, traffic.Split{Weights: vec.Split})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for i, vec := range v.RouteVectors {
		sj, _ := json.Marshal(vec.Split)
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen[vec.Salt+string(sj)]+"/", nil)
		if vec.Header != nil {
			req.Header["X-Gray-User"] = []string{*vec.Header}
		}
		if vec.Cookie != nil {
			req.Header["Cookie"] = []string{*vec.Cookie}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("route vector %d: %v", i, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Version"); got != vec.Version {
			t.Errorf("route vector %d (key %q, bucket %d, salt %s, split %v): nginx chose %q, want %s", i, vec.Key, vec.Bucket, vec.Salt, vec.Split, got, vec.Version)
		}
	}
}
