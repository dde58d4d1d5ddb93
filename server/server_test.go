package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// instant is a backend whose instances are ready as soon as they are
// wanted: enough to drive the API; the real backends have their own tests.
type instant struct {
	mu   sync.Mutex
	want map[string]traffic.Replicas
}

func (b *instant) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []adapters.Instance
	for v, n := range b.want[app] {
		for i := 0; i < n; i++ {
			out = append(out, adapters.Instance{ID: app + "-" + v, Version: v, Ready: true})
		}
	}
	return out, nil
}

func (b *instant) Apply(ctx context.Context, rel *spec.Release, r traffic.Replicas, _ adapters.Step) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.want[rel.App] = r
	return nil
}

func (b *instant) Backend(*spec.Release) (adapters.Backend, error)      { return b, nil }
func (b *instant) Router(*spec.Release) (adapters.TrafficRouter, error) { return nil, nil }

const goodSpec = `# the demo app
app: demo
version: v1   # bumped by releases
replicas: 2
strategy:
  steps: [{setWeight: 50}, {pause: {}}]
backend: {type: process, process: {command: [demoapp]}}
`

type env struct {
	t   *testing.T
	src *memory.Source
	eng *engine.Engine
	url string
}

func newEnv(t *testing.T, tokens ...Token) *env {
	t.Helper()
	src := memory.New()
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: &instant{want: map[string]traffic.Replicas{}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go eng.Run(ctx)
	s := New(Config{Engine: eng, Source: src, Writer: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CommandTimeout: 5 * time.Second, Tokens: tokens})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, src: src, eng: eng, url: ts.URL}
}

func (e *env) do(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	return e.doAs("", method, path, body)
}

func (e *env) doAs(token, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func (e *env) waitPhase(app, phase string) {
	e.t.Helper()
	testenv.Eventually(e.t, 10*time.Second, app+" "+phase, func() error {
		e.eng.Trigger(app) // the instant backend is done at once: do not wait for a requeue
		v, err := e.eng.App(context.Background(), app)
		if err != nil {
			return err
		}
		return testenv.Check(string(v.Status.Phase) == phase, "phase %s", v.Status.Phase)
	})
}

// waitHealthyAt waits until app is Healthy on version: after a version
// change, waitPhase(app, "Healthy") can see the state from before the
// engine took the change in.
func (e *env) waitHealthyAt(app, version string) {
	e.t.Helper()
	testenv.Eventually(e.t, 10*time.Second, app+" Healthy at "+version, func() error {
		e.eng.Trigger(app)
		v, err := e.eng.App(context.Background(), app)
		if err != nil {
			return err
		}
		return testenv.Check(v.Status.Phase == rollout.Healthy && v.Status.StableVersion == version,
			"phase %s, stable %s", v.Status.Phase, v.Status.StableVersion)
	})
}

func TestBadInputIsRejectedWithFieldAndNothingWritten(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.do("PUT", "/api/v1/apps/demo", goodSpec); code != 200 {
		t.Fatalf("good spec: %d", code)
	}
	before, err := e.src.Get(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"PUT", "/api/v1/apps/demo", strings.Replace(goodSpec, "setWeight: 50", "setWeight: 150", 1), 400, "strategy.steps[0].setWeight"},
		{"PUT", "/api/v1/apps/demo", goodSpec + "surprise: true\n", 400, "surprise"},
		{"PUT", "/api/v1/apps/demo", strings.Replace(goodSpec, "replicas: 2", "replicas: two", 1), 400, "replicas"},
		{"PUT", "/api/v1/apps/demo", strings.Replace(goodSpec, "app: demo", "app: other", 1), 400, "app"},
		{"PUT", "/api/v1/apps/demo?dryRun=true", strings.Replace(goodSpec, "app: demo", "app: other", 1), 400, "app"},
		{"PUT", "/api/v1/apps/demo", "{{{", 400, ""},
		{"PUT", "/api/v1/apps/demo/version", `{"version":"v2; rm -rf /"}`, 400, "version"},
		{"PUT", "/api/v1/apps/demo/version", `{"version":"$(reboot)"}`, 400, "version"},
		{"PUT", "/api/v1/apps/demo/version", `{"version":""}`, 400, "version"},
		{"PUT", "/api/v1/apps/demo/version", `{"version":"v2","extra":1}`, 400, "body"},
		{"PUT", "/api/v1/apps/Demo_App/version", `{"version":"v2"}`, 400, "app"},
		{"POST", "/api/v1/apps/demo/dance", ``, 400, "command"},
	} {
		code, body := e.do(c.method, c.path, c.body)
		if code != c.code || body["field"] != nilIfEmpty(c.field) && !(c.field == "" && body["field"] == nil) {
			t.Errorf("%s %s %q: got %d %v, want %d field %q", c.method, c.path, c.body, code, body, c.code, c.field)
		}
		if msg, _ := body["error"].(string); msg == "" {
			t.Errorf("%s %s: no error message", c.method, c.path)
		}
		after, _ := e.src.Get(context.Background(), "demo")
		if after.Version != before.Version {
			t.Fatalf("%s %s %q changed the stored spec", c.method, c.path, c.body)
		}
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestSetVersionWritesToTheCentreKeepingTheDocument(t *testing.T) {
	e := newEnv(t)
	e.src.Set("demo", []byte(goodSpec))
	e.waitPhase("demo", "Healthy")
	code, body := e.do("PUT", "/api/v1/apps/demo/version", `{"version":"v2"}`)
	if code != 200 {
		t.Fatalf("set version: %d %v", code, body)
	}
	en, err := e.src.Get(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(en.Data)
	if !strings.Contains(doc, "version: v2") || !strings.Contains(doc, "# the demo app") || !strings.Contains(doc, "# bumped by releases") {
		t.Fatalf("document not edited in place:\n%s", doc)
	}
	e.waitPhase("demo", "Paused")
	code, body = e.do("GET", "/api/v1/apps/demo", "")
	st := body["status"].(map[string]any)
	if code != 200 || st["canaryVersion"] != "v2" || st["weights"].(map[string]any)["v2"] != 50.0 {
		t.Fatalf("status after set-version: %d %v", code, st)
	}
	if code, body := e.do("POST", "/api/v1/apps/demo/promote", ""); code != 200 {
		t.Fatalf("promote: %d %v", code, body)
	}
	e.waitPhase("demo", "Healthy")
	if code, body := e.do("POST", "/api/v1/apps/demo/promote", ""); code != 409 || !strings.Contains(body["error"].(string), "no rollout in progress") {
		t.Fatalf("promote with nothing in progress: %d %v", code, body)
	}
}

func TestNotFoundAndReadiness(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.do("GET", "/api/v1/apps/ghost", ""); code != 404 {
		t.Fatalf("unknown app: %d", code)
	}
	if code, _ := e.do("POST", "/api/v1/apps/ghost/pause", ""); code != 404 {
		t.Fatalf("command for unknown app: %d", code)
	}
	testenv.Eventually(t, 5*time.Second, "ready", func() error {
		code, _ := e.do("GET", "/readyz", "")
		return testenv.Check(code == 200, "readyz %d", code)
	})
	e.src.SetAvailable(false)
	testenv.Eventually(t, 5*time.Second, "readyz reports the source outage", func() error {
		code, body := e.do("GET", "/readyz", "")
		msg, _ := body["error"].(string)
		return testenv.Check(code == 503 && strings.Contains(msg, "unavailable"), "readyz %d %v", code, body)
	})
}

func TestEventsStreamStatus(t *testing.T) {
	e := newEnv(t)
	e.src.Set("demo", []byte(goodSpec))
	e.waitPhase("demo", "Healthy")
	resp, err := http.Get(e.url + "/api/v1/apps/demo/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	got := make(chan engine.Message, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m engine.Message
				if json.Unmarshal([]byte(data), &m) == nil {
					got <- m
				}
			}
		}
	}()
	if code, _ := e.do("PUT", "/api/v1/apps/demo/version", `{"version":"v2"}`); code != 200 {
		t.Fatal("set version failed")
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-got:
			if m.Kind == "status" && m.App != nil && m.App.Status.CanaryVersion == "v2" {
				return
			}
		case <-timeout:
			t.Fatal("no status with canary v2 on the event stream")
		}
	}
}

func TestSetVersion(t *testing.T) {
	y, err := SetVersion([]byte("app: a # c1\nversion: \"v1\" # c2\nreplicas: 2\n"), "v2")
	if err != nil || string(y) != "app: a # c1\nversion: v2 # c2\nreplicas: 2\n" {
		t.Fatalf("yaml: %q %v", y, err)
	}
	j, err := SetVersion([]byte(`{"app":"a","version":"v1","replicas":2}`), "v2")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if json.Unmarshal(j, &m) != nil || m["version"] != "v2" || m["replicas"] != 2.0 {
		t.Fatalf("json: %s", j)
	}
	if _, err := SetVersion([]byte("- a\n- b\n"), "v2"); err == nil {
		t.Fatal("a list is not a spec")
	}
}

var _ configsync.Writer = (*memory.Source)(nil)

func TestTokensAndAuditTrail(t *testing.T) {
	e := newEnv(t, Token{Name: "alice", Secret: "s3cret-w", Role: RoleWrite}, Token{Name: "dash", Secret: "s3cret-r", Role: RoleRead})
	e.src.Set("demo", []byte(goodSpec))
	e.waitPhase("demo", "Healthy")
	sub, cancel := e.eng.Broker().Subscribe("demo")
	defer cancel()
	for _, c := range []struct {
		token, method, path, body string
		code                      int
	}{
		{"", "GET", "/api/v1/apps", "", 401},
		{"wrong", "GET", "/api/v1/apps", "", 401},
		{"s3cret-r", "GET", "/api/v1/apps/demo", "", 200},
		{"s3cret-r", "PUT", "/api/v1/apps/demo/version", `{"version":"v2"}`, 403},
		{"s3cret-r", "POST", "/api/v1/apps/demo/pause", "", 403},
		{"s3cret-w", "PUT", "/api/v1/apps/demo/version", `{"version":"v2"}`, 200},
		{"", "GET", "/healthz", "", 200},
	} {
		if code, body := e.doAs(c.token, c.method, c.path, c.body); code != c.code {
			t.Errorf("%q %s %s: %d %v, want %d", c.token, c.method, c.path, code, body, c.code)
		}
	}
	en, _ := e.src.Get(context.Background(), "demo")
	if !strings.Contains(string(en.Data), "version: v2") {
		t.Fatal("the write token's change did not land")
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-sub:
			if m.Event != nil && m.Event.Reason == "Audit" {
				if m.Event.Message != "alice: set version v2 (ok)" {
					t.Fatalf("audit event %q", m.Event.Message)
				}
				return
			}
		case <-deadline:
			t.Fatal("no audit event naming alice")
		}
	}
}

// The document version shown by GET /api/v1/apps/{app} is what If-Match
// takes: a write with it succeeds, a second write with the same (now
// stale) version is refused with 412 and changes nothing.
func TestIfMatchWithTheVersionFromGet(t *testing.T) {
	e := newEnv(t)
	e.src.Set("demo", []byte(goodSpec))
	e.waitPhase("demo", "Healthy")
	code, view := e.do("GET", "/api/v1/apps/demo", "")
	ver, _ := view["documentVersion"].(string)
	if code != 200 || ver == "" {
		t.Fatalf("GET: %d, documentVersion %q", code, ver)
	}
	put := func(version string) (int, map[string]any) {
		req, _ := http.NewRequest("PUT", e.url+"/api/v1/apps/demo", strings.NewReader(strings.Replace(goodSpec, "version: v1", "version: "+version, 1)))
		req.Header.Set("If-Match", ver)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, body := put("v2"); code != 200 || body["documentVersion"] == ver {
		t.Fatalf("PUT with If-Match %s: %d %v", ver, code, body)
	}
	if code, body := put("v3"); code != 412 {
		t.Fatalf("PUT with the stale If-Match %s: %d %v, want 412", ver, code, body)
	}
	en, err := e.src.Get(context.Background(), "demo")
	if err != nil || !strings.Contains(string(en.Data), "version: v2") {
		t.Fatalf("document after the refused write: %q, %v", en.Data, err)
	}
}
