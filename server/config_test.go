package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	etcdsrc "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

const configSpec = `
app: demo
version: v1
replicas: 1
backend: {type: process, process: {command: [demoapp]}}
config:
  verifyInstances: false
  files:
    - name: app.yaml
      content: "greeting: hello\n"
      schema: {properties: {greeting: {type: string}}}
  targets: [{etcd: {key: "/config/{{.App}}/{{.File}}"}}]
`

func TestConfigRoutes(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := etcdtest.Start(t)
	cli := srv.Client()
	m, err := configrelease.New(configrelease.Config{Store: configrelease.NewEtcdStore(cli, ""), Centres: []configsync.Documents{etcdsrc.NewDocuments(cli)}})
	if err != nil {
		t.Fatal(err)
	}
	src := memory.New()
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: &instant{want: map[string]traffic.Replicas{}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: m})
	ectx, ecancel := context.WithCancel(context.Background())
	t.Cleanup(ecancel)
	go eng.Run(ectx)
	ts := httptest.NewServer(New(Config{Engine: eng, Source: src, Writer: src, Config: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler())
	t.Cleanup(ts.Close)
	e := &env{t: t, src: src, eng: eng, url: ts.URL}

	// a schema violation is refused before anything is written
	code, body := e.do("PUT", "/api/v1/apps/demo", strings.Replace(configSpec, `greeting: hello\n`, `greeting: 42\n`, 1))
	if code != 400 || body["field"] != "config.files[0].content" || !strings.Contains(body["error"].(string), "at /greeting") {
		t.Fatalf("schema violation: %d %v", code, body)
	}
	if _, err := src.Get(ctx, "demo"); err == nil {
		t.Fatal("an invalid spec was written")
	}
	if code, body := e.do("PUT", "/api/v1/apps/demo", configSpec); code != 200 {
		t.Fatalf("good spec: %d %v", code, body)
	}
	e.waitPhase("demo", "Healthy")
	code, body = e.do("GET", "/api/v1/apps/demo/config", "")
	cfg, _ := body["config"].(map[string]any)
	layout, _ := cfg["layout"].(map[string]any)
	if code != 200 || layout["stableIdentity"] != "v1" {
		t.Fatalf("config: %d %v", code, body)
	}
	code, body = e.do("GET", "/api/v1/apps/demo/config/history", "")
	hist, _ := body["history"].([]any)
	if code != 200 || len(hist) != 1 || hist[0].(map[string]any)["identity"] != "v1" {
		t.Fatalf("history: %d %v", code, body)
	}
	resp, err := http.Get(ts.URL + "/api/v1/apps/demo/config/history/v1/files/app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(raw) != "greeting: hello\n" || resp.Header.Get("X-Config-SHA256") == "" {
		t.Fatalf("file: %d %q", resp.StatusCode, raw)
	}
	for _, p := range []string{"/api/v1/apps/demo/config/history/v9", "/api/v1/apps/demo/config/history/v1/files/nope.yaml", "/api/v1/apps/nobody/config"} {
		if code, _ := e.do("GET", p, ""); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

func TestConfigRoutesOff(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.do("GET", "/api/v1/apps/demo/config/history", ""); code != http.StatusNotImplemented {
		t.Fatalf("without a config service: %d", code)
	}
}
