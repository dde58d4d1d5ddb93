package docker_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/dockertest"
	"github.com/graylane/graylane/traffic"
)

func byID(ins []adapters.Instance) map[string]adapters.Instance {
	out := map[string]adapters.Instance{}
	for _, in := range ins {
		out[in.ID] = in
	}
	return out
}

// A new Backend (graylane restarted, even after kill -9) adopts the
// app's running containers by their labels instead of starting new ones,
// and starts a container an earlier graylane created but did not start,
// instead of creating a second one for that slot.
func TestAdoptsContainersAfterRestart(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	const app = "adopt"
	removeApp(t, e, app)
	evlog := e.WatchEvents(t, docker.LabelApp+"="+app)
	rel := release(t, app, "v1", e.Host, "")
	b1 := newBackend(t, e)
	apply(t, b1, rel, traffic.Replicas{"v1": 2})
	first := byID(waitReady(t, b1, app, traffic.Replicas{"v1": 2}))
	b1.Close() // containers keep running, as they outlive graylane

	// what a graylane killed between create and start leaves behind
	ctx := context.Background()
	port := nat.Port("8080/tcp")
	made, err := e.Client().ContainerCreate(ctx, &container.Config{
		Image: "demoapp:v1", Cmd: []string{"--version=v1", "--addr=0.0.0.0:8080"}, ExposedPorts: nat.PortSet{port: {}},
		Labels: map[string]string{docker.LabelApp: app, docker.LabelVersion: "v1", docker.LabelSlot: "2",
			docker.LabelManagedBy: docker.ManagedBy, docker.LabelPort: "8080", docker.LabelInstance: app + "-v1-2"},
	}, &container.HostConfig{PortBindings: nat.PortMap{port: {{HostIP: "127.0.0.1"}}}}, nil, nil, app+"-v1-2")
	if err != nil {
		t.Fatal(err)
	}

	b2 := newBackend(t, e, func(c *docker.Config) {
		c.Releases = func(context.Context, string) (*spec.Release, error) { return rel, nil }
	})
	// before any Apply: the running ones are adopted (and probed), the
	// created one is reported and left alone
	got := waitFor(t, b2, app, "adopted instances ready", func(ins []adapters.Instance) bool {
		m := byID(ins)
		return len(ins) == 3 && m[app+"-v1-0"].Ready && m[app+"-v1-1"].Ready && m[app+"-v1-2"].Meta[docker.MetaState] == "created"
	})
	for id, in := range byID(got) {
		if in.Meta[docker.MetaAdopted] != "true" {
			t.Errorf("%s: adopted = %q, want true", id, in.Meta[docker.MetaAdopted])
		}
		if f, ok := first[id]; ok && (f.Addr != in.Addr || f.Meta[docker.MetaContainer] != in.Meta[docker.MetaContainer]) {
			t.Errorf("%s changed across the restart: %+v -> %+v", id, f, in)
		}
	}
	apply(t, b2, rel, traffic.Replicas{"v1": 3})
	all := byID(waitReady(t, b2, app, traffic.Replicas{"v1": 3}))
	if all[app+"-v1-2"].Meta[docker.MetaContainer] != made.ID[:12] {
		t.Fatalf("slot v1/2 runs container %s, want the created one %s started", all[app+"-v1-2"].Meta[docker.MetaContainer], made.ID[:12])
	}
	evs := evlog.Events(t)
	for name, n := range dockertest.Count(evs, "create") {
		if n != 1 {
			t.Errorf("container %s was created %d times", name, n)
		}
	}
	starts := dockertest.Count(evs, "start")
	for _, id := range []string{app + "-v1-0", app + "-v1-1", app + "-v1-2"} {
		if starts[id] != 1 {
			t.Errorf("slot %s was started %d times, want once (events %v)", id, starts[id], starts)
		}
	}
}

// Each failure a new version can meet is reported on its instance with
// the engine's (or the app's) own message, marks the version stalled so
// the planner fails the step at once, and leaves the stable version's
// container alone.
func TestFailuresCarryTheEnginesMessage(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	held, err := net.Listen("tcp", ":0") // a port someone else holds
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port
	cases := []struct {
		name, version, extra string
		msg                  []string
	}{
		{"image missing with pull never", "v9", "", []string{"No such image: demoapp:v9", "pull is never"}},
		{"image missing from an unreachable registry", "v9", `image: "127.0.0.1:1/demo:{{.Version}}"
pull: missing`, []string{"pull image 127.0.0.1:1/demo:v9", "connection refused"}},
		// "exited with code 1" when a scan saw it exited; when the engine's
		// restart policy restarted it between two scans, its restarts are
		// what shows (a restart clears the engine's exit code)
		{"container exits at start", "v3", `image: "crash:{{.Version}}"`, []string{"exited with code 1|restarted", "--config-files needs a source"}},
		{"port already taken (network host)", "v2", "network: host\nport: " + strconv.Itoa(heldPort) + "\ncommand: [\"--version={{.Version}}\", \"--addr=0.0.0.0:{{.Port}}\"]",
			[]string{"address already in use"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := "fail" + strconv.Itoa(i)
			removeApp(t, e, app)
			b := newBackend(t, e)
			stable := release(t, app, "v1", e.Host, "")
			apply(t, b, stable, traffic.Replicas{"v1": 1})
			before := waitReady(t, b, app, traffic.Replicas{"v1": 1})[0]

			bad := release(t, app, tc.version, e.Host, tc.extra)
			apply(t, b, bad, traffic.Replicas{"v1": 1, tc.version: 1})
			got := waitFor(t, b, app, "the new version stalled", func(ins []adapters.Instance) bool {
				for _, in := range ins {
					if in.Version == tc.version && in.Meta[adapters.MetaStalled] != "" {
						return true
					}
				}
				return false
			})
			for _, in := range got {
				if in.Version == "v1" {
					if !in.Ready || in.Addr != before.Addr || in.Meta[docker.MetaContainer] != before.Meta[docker.MetaContainer] {
						t.Errorf("the stable instance changed: %+v -> %+v", before, in)
					}
					continue
				}
				if in.Ready {
					t.Errorf("the failing instance is ready: %+v", in)
				}
				for _, m := range tc.msg {
					if !containsAny(in.Message, m) || !containsAny(in.Meta[adapters.MetaStalled], m) {
						t.Errorf("message %q / stalled %q: want %q in both", in.Message, in.Meta[adapters.MetaStalled], m)
					}
				}
				t.Logf("reported: %s", in.Meta[adapters.MetaStalled])
			}
			// the stable version still serves
			resp, err := http.Get("http://" + before.Addr + "/")
			if err != nil || resp.Header.Get(adaptertest.DemoVersionHeader) != "v1" {
				t.Fatalf("stable instance: %v %v", resp, err)
			}
			resp.Body.Close()
			// rolling back removes the failed version and keeps v1
			apply(t, b, stable, traffic.Replicas{"v1": 1})
			after := waitReady(t, b, app, traffic.Replicas{"v1": 1})[0]
			if after.Meta[docker.MetaContainer] != before.Meta[docker.MetaContainer] {
				t.Fatalf("rolling back replaced the stable container")
			}
		})
	}
}

// An engine that cannot be reached holds the app: Observe fails with the
// engine's message, nothing is started or stopped, the containers keep
// serving (live-restore), and once the engine is back they are adopted
// as they were.
func TestEngineDownHoldsAndRecovers(t *testing.T) {
	testenv.IntegrationTest(t)
	e := dockertest.Start(t, dockertest.Options{LiveRestore: true})
	e.DemoImages(t, "demoapp:v1", "demoapp:v2")
	const app = "down"
	b := newBackend(t, e)
	rel := release(t, app, "v1", e.Host, "network: host\nport: 0\ncommand: [\"--version={{.Version}}\", \"--addr=127.0.0.1:{{.Port}}\"]")
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	before := waitReady(t, b, app, traffic.Replicas{"v1": 1})[0]

	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	var err error
	testenv.Eventually(t, 30*time.Second, "Observe fails with the engine down", func() error {
		_, err = b.Observe(context.Background(), app)
		return testenv.Check(err != nil, "Observe still answers")
	})
	if !strings.Contains(err.Error(), "Cannot connect to the Docker daemon") || !strings.Contains(err.Error(), e.Host) {
		t.Fatalf("Observe with the engine down = %v, want the engine's message naming %s", err, e.Host)
	}
	t.Logf("engine down: %v", err)
	// Apply still records the desired state; nothing happens meanwhile
	apply(t, b, release(t, app, "v2", e.Host, "network: host\nport: 0\ncommand: [\"--version={{.Version}}\", \"--addr=127.0.0.1:{{.Port}}\"]"), traffic.Replicas{"v1": 1, "v2": 1})
	resp, gerr := http.Get("http://" + before.Addr + "/")
	if gerr != nil {
		t.Fatalf("the container stopped serving while its engine was down: %v", gerr)
	}
	resp.Body.Close()

	if err := e.StartAgain(); err != nil {
		t.Fatal(err)
	}
	after := byID(waitReady(t, b, app, traffic.Replicas{"v1": 1, "v2": 1}))
	if in := after[app+"-v1-0"]; in.Meta[docker.MetaContainer] != before.Meta[docker.MetaContainer] || in.Addr != before.Addr {
		t.Fatalf("v1's container was replaced across the engine outage: %+v -> %+v", before, in)
	}
}

// containsAny reports whether s contains one of the |-separated parts of want.
func containsAny(s, want string) bool {
	for _, w := range strings.Split(want, "|") {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
