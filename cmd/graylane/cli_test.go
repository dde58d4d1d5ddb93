package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/server"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// ready is a backend whose instances are ready as soon as they are wanted.
type ready struct {
	mu   sync.Mutex
	want map[string]traffic.Replicas
}

func (b *ready) Observe(_ context.Context, app string) ([]adapters.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []adapters.Instance
	for v, n := range b.want[app] {
		for i := 0; i < n; i++ {
			out = append(out, adapters.Instance{ID: fmt.Sprintf("%s-%s-%d", app, v, i), Version: v, Ready: true})
		}
	}
	return out, nil
}

func (b *ready) Apply(_ context.Context, rel *spec.Release, r traffic.Replicas, _ adapters.Step) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.want[rel.App] = r
	return nil
}

func (b *ready) Backend(*spec.Release) (adapters.Backend, error)      { return b, nil }
func (b *ready) Router(*spec.Release) (adapters.TrafficRouter, error) { return nil, nil }

// `graylane apps` follows the list's pages and passes its filters to the
// server.
func TestAppsCommandFollowsPages(t *testing.T) {
	src := memory.New()
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: &ready{want: map[string]traffic.Replicas{}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eng.Run(ctx)
	ts := httptest.NewServer(server.New(server.Config{Engine: eng, Source: src, Writer: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler())
	defer ts.Close()
	var apps []string
	for i := 0; i < 7; i++ {
		app := fmt.Sprintf("app-%d", i)
		apps = append(apps, app)
		src.Set(app, []byte(fmt.Sprintf("app: %s\nversion: v1\nbackend: {type: process, process: {command: [x]}}\n", app)))
	}
	run := func(args ...string) string {
		t.Helper()
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append([]string{"apps", "--server", ts.URL}, args...))
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("graylane apps %v: %v", args, err)
		}
		return out.String()
	}
	testenv.Eventually(t, 10*time.Second, "every app Healthy", func() error {
		out := run("--phase", "Healthy")
		return testenv.Check(strings.Count(out, "Healthy") >= len(apps), "graylane apps --phase Healthy:\n%s", out)
	})
	out := run("--page-size", "2")
	for _, a := range apps {
		if strings.Count(out, a+" ") != 1 {
			t.Fatalf("%s listed %d times across pages of 2:\n%s", a, strings.Count(out, a+" "), out)
		}
	}
	if out := run("--search", "app-3"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "app-3") {
		t.Fatalf("--search app-3:\n%s", out)
	}
}
