package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func TestDemoLoadsAndReportsConfig(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := etcdtest.Start(t)
	cli := srv.Client()

	o := options{version: "v2", config: configFlags{app: "demo", files: "app.yaml", interval: 50 * time.Millisecond, etcd: srv.Addr(), etcdKey: "/config/{app}/{file}"}}
	conf, closeConf, err := loadConfig(ctx, o.config, o.version, newSlog())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConf()
	o.conf = conf
	ts := httptest.NewServer(newHandler(o))
	defer ts.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// nothing to load yet: not healthy
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz without config: %d %s", code, body)
	}
	report := func() configwire.Report {
		_, body := get("/graylane/config")
		var r configwire.Report
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("report %q: %v", body, err)
		}
		return r
	}
	want := func(content string) string {
		sum, _ := configwire.FileDigest("yaml", []byte(content))
		return configwire.BundleDigest([]configwire.File{{Name: "app.yaml", Format: "yaml", SHA256: sum}})
	}
	waitReport := func(sum string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, "report with checksum "+sum, func() error {
			r := report()
			return testenv.Check(r.Checksum == sum, "report %+v", r)
		})
	}
	if _, err := cli.Put(ctx, "/config/demo/app.yaml", "greeting: stable\n"); err != nil {
		t.Fatal(err)
	}
	waitReport(want("greeting: stable\n"))
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz with config: %d", code)
	}
	// the copy bound to v2 wins for this v2 instance
	if _, err := cli.Put(ctx, "/config/demo/app.yaml@v2", "greeting: canary\n"); err != nil {
		t.Fatal(err)
	}
	waitReport(want("greeting: canary\n"))
	_, body := get("/config")
	var view struct {
		Identity string            `json:"identity"`
		Files    map[string]string `json:"files"`
	}
	if err := json.Unmarshal([]byte(body), &view); err != nil || view.Identity != "v2" || view.Files["app.yaml"] != "greeting: canary\n" {
		t.Fatalf("/config %s (%v)", body, err)
	}
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Config-Checksum") != want("greeting: canary\n") {
		t.Fatalf("X-Config-Checksum %q", resp.Header.Get("X-Config-Checksum"))
	}
}
