package docker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/dockertest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// One private engine serves the package's tests (each test uses its own
// app names); it is started by the first test that needs it.
var (
	engOnce sync.Once
	eng     *dockertest.Engine
	engErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if eng != nil {
		if err := eng.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stop private dockerd:", err)
		}
	}
	os.Exit(code)
}

// engine returns the shared private engine with the demo images v1..v3
// and the crash image crash:v3.
func engine(t testing.TB) *dockertest.Engine {
	t.Helper()
	testenv.LookPath(t, "dockerd")
	engOnce.Do(func() {
		eng, engErr = dockertest.StartEngine(dockertest.Options{})
		if engErr != nil {
			return
		}
		if engErr = eng.ImportDemo(context.Background(), []string{dockertest.DemoEntrypoint, dockertest.DemoHealthcheck}, "demoapp:v1", "demoapp:v2", "demoapp:v3"); engErr != nil {
			return
		}
		engErr = eng.ImportDemo(context.Background(), []string{dockertest.CrashEntrypoint}, "crash:v3")
	})
	testenv.Require(t, "private dockerd", engErr)
	return eng
}

// newBackend returns a Backend on the shared engine, closed at cleanup.
func newBackend(t testing.TB, e *dockertest.Engine, mod ...func(*docker.Config)) *docker.Backend {
	t.Helper()
	cfg := docker.Config{
		DefaultHost:  spec.DockerHost{URL: e.Host},
		Logger:       testenv.Logger(t, slog.LevelDebug),
		DrainDelay:   100 * time.Millisecond,
		RestartDelay: 100 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	b, err := docker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// removeApp removes an app's containers at cleanup (containers outlive a
// closed Backend, as they outlive graylane).
func removeApp(t testing.TB, e *dockertest.Engine, app string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		list, err := e.Client().ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelApp+"="+app))})
		if err != nil {
			t.Errorf("list containers of %s: %v", app, err)
			return
		}
		for _, c := range list {
			_ = e.Client().ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	})
}

// release parses a docker release of the demo app; extra is YAML added
// under backend.docker.
func release(t testing.TB, app, version, hostURL, extra string) *spec.Release {
	t.Helper()
	doc := fmt.Sprintf(`app: %s
version: %s
backend:
  type: docker
  docker:
    image: "demoapp:{{.Version}}"
    pull: never
    command: ["--version={{.Version}}", "--addr=0.0.0.0:8080"]
    port: 8080
    stopGracePeriod: 5s
    hosts: ["%s"]
%s
health: {path: /healthz, interval: 200ms, timeout: 1s}
`, app, version, hostURL, indent(extra, "    "))
	rel, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("release: %v\n%s", err, doc)
	}
	return rel
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

func apply(t *testing.T, b *docker.Backend, rel *spec.Release, want traffic.Replicas) {
	t.Helper()
	if err := b.Apply(context.Background(), rel, want, adapters.NoStep); err != nil {
		t.Fatalf("Apply(%s, %v): %v", rel.App, want, err)
	}
}

// waitReady waits until the app has exactly want, all ready.
func waitReady(t *testing.T, b *docker.Backend, app string, want traffic.Replicas) []adapters.Instance {
	t.Helper()
	return adaptertest.WaitReplicas(t, &adaptertest.BackendHarness{Backend: b, Eventually: 90 * time.Second}, app, want)
}

// waitFor polls Observe until cond holds (90s).
func waitFor(t *testing.T, b *docker.Backend, app, what string, cond func([]adapters.Instance) bool) []adapters.Instance {
	t.Helper()
	var got []adapters.Instance
	testenv.Eventually(t, 90*time.Second, what, func() error {
		var err error
		got, err = b.Observe(context.Background(), app)
		return testenv.Check(err == nil && cond(got), "%s (err %v)", adaptertest.Describe(got), err)
	})
	return got
}
