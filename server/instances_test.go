package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/traffic"
)

// fakeGray is an in-memory GrayService recording TTLs.
type fakeGray struct {
	mu   sync.Mutex
	ins  map[string]gray.Instance // app/id
	ttls map[string]time.Duration
	doc  *gray.Document
}

func (f *fakeGray) Document(_ context.Context, app string) (*gray.Document, error) {
	if f.doc == nil || f.doc.App != app {
		return nil, fmt.Errorf("gray document of %s: %w", app, configsync.ErrNotFound)
	}
	return f.doc, nil
}

func (f *fakeGray) Register(_ context.Context, in gray.Instance, ttl time.Duration) (gray.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ins[in.App+"/"+in.ID] = in
	f.ttls[in.App+"/"+in.ID] = ttl
	return in, nil
}

func (f *fakeGray) Heartbeat(_ context.Context, app, id string) (gray.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.ins[app+"/"+id]
	if !ok {
		return gray.Instance{}, fmt.Errorf("instance %s: %w", id, configsync.ErrNotFound)
	}
	return in, nil
}

func (f *fakeGray) Deregister(_ context.Context, app, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ins, app+"/"+id)
	return nil
}

func (f *fakeGray) Instances(_ context.Context, app string) ([]gray.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []gray.Instance
	for _, in := range f.ins {
		if app == "" || in.App == app {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func newGrayEnv(t *testing.T, g GrayService, tokens ...Token) *env {
	t.Helper()
	src := memory.New()
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: &instant{want: map[string]traffic.Replicas{}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s := New(Config{Engine: eng, Source: src, Writer: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Gray: g, Tokens: tokens})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, src: src, eng: eng, url: ts.URL}
}

func TestInstanceRoutes(t *testing.T) {
	f := &fakeGray{ins: map[string]gray.Instance{}, ttls: map[string]time.Duration{}}
	e := newGrayEnv(t, f)

	code, body := e.do("POST", "/api/v1/instances", `{"app":"shop","version":"v1","addr":"127.0.0.1:8001","meta":{"zone":"a"}}`)
	if code != 201 {
		t.Fatalf("register: %d %v", code, body)
	}
	in := body["instance"].(map[string]any)
	if in["id"] != "127.0.0.1:8001" || in["ready"] != true || body["ttl"] != "15s" || body["heartbeatEvery"] != "5s" ||
		body["heartbeat"] != "/api/v1/instances/shop/127.0.0.1:8001/heartbeat" {
		t.Fatalf("register answered %v", body)
	}
	code, body = e.do("POST", "/api/v1/instances", `{"app":"shop","version":"v2","id":"b","addr":"127.0.0.1:8002","ready":false,"ttl":"3s"}`)
	if code != 201 || f.ttls["shop/b"] != 3*time.Second || f.ins["shop/b"].Ready {
		t.Fatalf("register b: %d %v (ttl %s)", code, body, f.ttls["shop/b"])
	}
	for _, bad := range []struct{ body, field string }{
		{`{"app":"Shop","version":"v1","addr":"127.0.0.1:1"}`, "app"},
		{`{"app":"shop","version":"v 1","addr":"127.0.0.1:1"}`, "version"},
		{`{"app":"shop","version":"v1","addr":"nowhere"}`, "addr"},
		{`{"app":"shop","version":"v1","addr":"127.0.0.1:1","ttl":"1s"}`, "ttl"},
		{`{"app":"shop","version":"v1","addr":"127.0.0.1:1","colour":"red"}`, "colour"},
		{`{"app":"shop","version":"v1","addr":"127.0.0.1:1","id":"a/b"}`, "id"},
		{`{}`, "app"},
	} {
		code, body := e.do("POST", "/api/v1/instances", bad.body)
		if code != 400 || body["field"] != bad.field {
			t.Errorf("register %s: %d %v, want 400 (field %q)", bad.body, code, body, bad.field)
		}
	}
	code, body = e.do("GET", "/api/v1/apps/shop/instances", "")
	vs, _ := body["versions"].(map[string]any)
	if code != 200 || len(vs["v1"].([]any)) != 1 || len(vs["v2"].([]any)) != 1 {
		t.Fatalf("instances per version: %d %v", code, body)
	}
	if code, body := e.do("GET", "/api/v1/instances", ""); code != 200 || len(body["instances"].([]any)) != 2 {
		t.Fatalf("list: %d %v", code, body)
	}
	if code, _ := e.do("POST", "/api/v1/instances/shop/b/heartbeat", ""); code != 200 {
		t.Fatalf("heartbeat: %d", code)
	}
	if code, _ := e.do("DELETE", "/api/v1/instances/shop/b", ""); code != 204 {
		t.Fatalf("deregister: %d", code)
	}
	if code, body := e.do("POST", "/api/v1/instances/shop/b/heartbeat", ""); code != 404 {
		t.Fatalf("heartbeat of an expired instance: %d %v, want 404 (register again)", code, body)
	}
	if code, _ := e.do("GET", "/api/v1/apps/shop/gray", ""); code != 404 {
		t.Fatalf("gray document before any: %d", code)
	}
	f.doc = &gray.Document{Schema: gray.Schema, App: "shop", Generation: 7, Split: []traffic.VersionWeight{{Version: "v1", Weight: 100}}}
	if code, body := e.do("GET", "/api/v1/apps/shop/gray", ""); code != 200 || body["generation"] != float64(7) || body["schema"] != gray.Schema {
		t.Fatalf("gray document: %d %v", code, body)
	}
}

func TestInstanceRoutesNeedAWriteToken(t *testing.T) {
	f := &fakeGray{ins: map[string]gray.Instance{}, ttls: map[string]time.Duration{}}
	e := newGrayEnv(t, f, Token{Name: "svc", Secret: "w", Role: RoleWrite}, Token{Name: "dash", Secret: "r", Role: RoleRead})
	reg := `{"app":"shop","version":"v1","addr":"127.0.0.1:8001"}`
	if code, _ := e.doAs("r", "POST", "/api/v1/instances", reg); code != 403 {
		t.Fatalf("register with a read token: %d, want 403", code)
	}
	if code, _ := e.doAs("w", "POST", "/api/v1/instances", reg); code != 201 {
		t.Fatalf("register with a write token: %d", code)
	}
	if code, _ := e.doAs("r", "GET", "/api/v1/apps/shop/instances", ""); code != 200 {
		t.Fatalf("list with a read token: %d", code)
	}
	if code, _ := e.do("GET", "/api/v1/apps/shop/instances", ""); code != 401 {
		t.Fatalf("list without a token: %d", code)
	}
}

func TestGrayRoutesOffWithoutAService(t *testing.T) {
	e := newGrayEnv(t, nil)
	if code, _ := e.do("GET", "/api/v1/apps/shop/gray", ""); code != 501 {
		t.Fatalf("gray without a service: %d, want 501", code)
	}
}
