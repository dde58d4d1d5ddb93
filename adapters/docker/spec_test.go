package docker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/dockertest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// The container is created as the spec says: templated env passed as API
// fields (shell metacharacters stay literal), labels, resources, volumes,
// restart policy; graylane's labels are on it.
func TestContainerFollowsTheSpec(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	const app = "shape"
	removeApp(t, e, app)
	vol := t.TempDir()
	b := newBackend(t, e)
	rel := release(t, app, "v1", e.Host, `env: {DEMO_VERSION: "{{.Version}}-{{.Slot}}", DEMO_INJECT: "$(touch /tmp/pwned); rm -rf / `+"`id`"+`"}
labels: {team: payments}
resources: {cpus: 0.5, memory: 64Mi}
volumes: ["`+vol+`:/data:ro"]`)
	apply(t, b, rel, traffic.Replicas{"v1": 1})
	in := waitReady(t, b, app, traffic.Replicas{"v1": 1})[0]

	resp, err := http.Get("http://" + in.Addr + "/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Env map[string]string }
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.Env["DEMO_VERSION"] != "v1-0" || info.Env["DEMO_INJECT"] != "$(touch /tmp/pwned); rm -rf / `id`" {
		t.Fatalf("container env = %v", info.Env)
	}
	c, err := e.Client().ContainerInspect(context.Background(), app+"-v1-0")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Config.Labels
	if l[docker.LabelApp] != app || l[docker.LabelVersion] != "v1" || l[docker.LabelSlot] != "0" || l[docker.LabelManagedBy] != "graylane" || l["team"] != "payments" {
		t.Errorf("labels = %v", l)
	}
	if c.HostConfig.NanoCPUs != 5e8 || c.HostConfig.Memory != 64<<20 || c.HostConfig.RestartPolicy.Name != "unless-stopped" {
		t.Errorf("host config: cpus %d memory %d restart %q", c.HostConfig.NanoCPUs, c.HostConfig.Memory, c.HostConfig.RestartPolicy.Name)
	}
	if len(c.Mounts) != 1 || c.Mounts[0].Source != vol || c.Mounts[0].Destination != "/data" || c.Mounts[0].RW {
		t.Errorf("mounts = %+v", c.Mounts)
	}
	if !slices.Equal(c.Args, []string{"--version=v1", "--addr=0.0.0.0:8080"}) || c.Path != "/bin/demoapp" {
		t.Errorf("process = %s %q, want the image's entrypoint with the templated command", c.Path, c.Args)
	}
	if !strings.HasPrefix(in.Addr, "127.0.0.1:") {
		t.Errorf("address %s is not a loopback published port", in.Addr)
	}
}

// network host without a port: graylane gives each instance a free port
// of its own through {{.Port}}; healthcheck image: the image's exec-form
// HEALTHCHECK decides readiness; a named network works like the bridge.
func TestNetworksAndHealthModes(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	t.Run("host network with picked ports", func(t *testing.T) {
		const app = "hostnet"
		removeApp(t, e, app)
		b := newBackend(t, e)
		apply(t, b, release(t, app, "v1", e.Host, "network: host\nport: 0\ncommand: [\"--version={{.Version}}\", \"--addr=127.0.0.1:{{.Port}}\"]"), traffic.Replicas{"v1": 2})
		ins := waitReady(t, b, app, traffic.Replicas{"v1": 2})
		if ins[0].Addr == ins[1].Addr {
			t.Fatalf("two instances share %s", ins[0].Addr)
		}
		for _, in := range ins {
			resp, err := http.Get("http://" + in.Addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	})
	t.Run("image healthcheck on a named network", func(t *testing.T) {
		const app = "imghealth"
		removeApp(t, e, app)
		ctx := context.Background()
		if _, err := e.Client().NetworkCreate(ctx, "graylane-test-net", network.CreateOptions{Driver: "bridge"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Client().NetworkRemove(context.Background(), "graylane-test-net") })
		b := newBackend(t, e)
		apply(t, b, release(t, app, "v1", e.Host, "healthcheck: image\nnetwork: graylane-test-net"), traffic.Replicas{"v1": 1})
		in := waitReady(t, b, app, traffic.Replicas{"v1": 1})[0]
		if in.Meta[docker.MetaHealth] != "image" {
			t.Fatalf("health mode %q", in.Meta[docker.MetaHealth])
		}
		c, err := e.Client().ContainerInspect(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.State.Health == nil || c.State.Health.Status != "healthy" || c.NetworkSettings.Networks["graylane-test-net"] == nil {
			t.Fatalf("ready, but the engine says health %+v, networks %v", c.State.Health, c.NetworkSettings.Networks)
		}
	})
}

// start-first starts the new container before it stops the old one;
// stop-first stops (and removes) the old one before it creates the new.
func TestUpdateOrder(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	for _, order := range []string{spec.DockerStartFirst, spec.DockerStopFirst} {
		t.Run(order, func(t *testing.T) {
			app := "order-" + strings.Split(order, "-")[0]
			removeApp(t, e, app)
			b := newBackend(t, e)
			apply(t, b, release(t, app, "v1", e.Host, "order: "+order), traffic.Replicas{"v1": 1})
			waitReady(t, b, app, traffic.Replicas{"v1": 1})
			evlog := e.WatchEvents(t, docker.LabelApp+"="+app)
			apply(t, b, release(t, app, "v2", e.Host, "order: "+order), traffic.Replicas{"v2": 1})
			waitReady(t, b, app, traffic.Replicas{"v2": 1})
			at := map[string]time.Time{}
			for _, ev := range evlog.Events(t) {
				if _, seen := at[ev.Action+" "+ev.Name]; !seen {
					at[ev.Action+" "+ev.Name] = ev.At
				}
			}
			newStart, newCreate, oldDie := at["start "+app+"-v2-0"], at["create "+app+"-v2-0"], at["die "+app+"-v1-0"]
			if newStart.IsZero() || oldDie.IsZero() {
				t.Fatalf("events missing: %v", at)
			}
			switch order {
			case spec.DockerStartFirst:
				if !newStart.Before(oldDie) {
					t.Fatalf("start-first: v2 started at %s, v1 died at %s", newStart, oldDie)
				}
			case spec.DockerStopFirst:
				if !oldDie.Before(newCreate) {
					t.Fatalf("stop-first: v1 died at %s, v2 created at %s", oldDie, newCreate)
				}
			}
		})
	}
}

// With two engines, slot n runs on hosts[n mod 2].
func TestInstancesSpreadOverEngines(t *testing.T) {
	testenv.IntegrationTest(t)
	e1 := engine(t)
	e2 := dockertest.Start(t, dockertest.Options{})
	e2.DemoImages(t, "demoapp:v1")
	const app = "spread"
	removeApp(t, e1, app)
	b := newBackend(t, e1)
	rel := release(t, app, "v1", e1.Host, "")
	rel.Backend.Docker.Hosts = []spec.DockerHost{{URL: e1.Host, Name: "one"}, {URL: e2.Host, Name: "two"}}
	apply(t, b, rel, traffic.Replicas{"v1": 4})
	for _, in := range waitReady(t, b, app, traffic.Replicas{"v1": 4}) {
		want := map[string]string{"0": "one", "1": "two", "2": "one", "3": "two"}[in.Meta[docker.MetaSlot]]
		if in.Meta[docker.MetaHost] != want {
			t.Errorf("%s runs on %s, want %s", in.ID, in.Meta[docker.MetaHost], want)
		}
	}
}

// A docker-compose service is adopted: image (retagged with the version),
// environment, port, healthcheck and resources come from the compose file;
// containers carry the compose project and service labels, so
// docker-compose ps lists them; a rollout v1 -> v2 works as for any spec.
func TestComposeServiceAdopted(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	const app = "composeweb"
	removeApp(t, e, app)
	dir := t.TempDir()
	compose := `version: "3.8"
services:
  web:
    image: demoapp:1.0
    command: ["--version=compose", "--addr=0.0.0.0:8080"]
    ports: ["8080"]
    environment:
      DEMO_FROM: compose
      DEMO_TIER: ${TIER:-gold}
    healthcheck:
      test: ["CMD", "/bin/demoapp", "probe"]
      interval: 300ms
    labels: {tier: web}
    deploy: {resources: {limits: {cpus: "0.25", memory: 64M}}}
`
	file := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TIER=silver\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// the network `docker-compose up` made for the project
	if _, err := e.Client().NetworkCreate(ctx, "shop_default", network.CreateOptions{Driver: "bridge",
		Labels: map[string]string{docker.LabelComposeProject: "shop", "com.docker.compose.network": "default"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Client().NetworkRemove(context.Background(), "shop_default") })
	b := newBackend(t, e)
	doc := func(v string) *spec.Release {
		rel, err := spec.Parse([]byte(`app: ` + app + `
version: ` + v + `
backend:
  type: docker
  docker:
    compose: {file: ` + file + `, service: web, project: shop}
    command: ["--version={{.Version}}", "--addr=0.0.0.0:8080"]
    pull: never
    hosts: ["` + e.Host + `"]
health: {interval: 200ms}
`))
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	apply(t, b, doc("v1"), traffic.Replicas{"v1": 2})
	waitReady(t, b, app, traffic.Replicas{"v1": 2})
	apply(t, b, doc("v2"), traffic.Replicas{"v1": 2, "v2": 2})
	waitReady(t, b, app, traffic.Replicas{"v1": 2, "v2": 2})
	apply(t, b, doc("v2"), traffic.Replicas{"v2": 2})
	ins := waitReady(t, b, app, traffic.Replicas{"v2": 2})
	for _, in := range ins {
		if in.Meta[docker.MetaImage] != "demoapp:v2" || in.Meta[docker.MetaHealth] != "image" {
			t.Errorf("%s: image %s, health %s; want demoapp:v2 and the compose healthcheck", in.ID, in.Meta[docker.MetaImage], in.Meta[docker.MetaHealth])
		}
		c, err := e.Client().ContainerInspect(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		l := c.Config.Labels
		if l[docker.LabelComposeProject] != "shop" || l[docker.LabelComposeService] != "web" || l["tier"] != "web" || l[docker.LabelApp] != app {
			t.Errorf("%s labels = %v", in.ID, l)
		}
		if !slices.Contains(c.Config.Env, "DEMO_FROM=compose") || !slices.Contains(c.Config.Env, "DEMO_TIER=silver") {
			t.Errorf("%s env = %v", in.ID, c.Config.Env)
		}
		if c.HostConfig.NanoCPUs != 25e7 || c.HostConfig.Memory != 64<<20 || c.NetworkSettings.Networks["shop_default"] == nil {
			t.Errorf("%s: cpus %d memory %d networks %v", in.ID, c.HostConfig.NanoCPUs, c.HostConfig.Memory, c.NetworkSettings.Networks)
		}
	}
	// docker-compose (1.29, Debian's) sees them as the service's containers
	dc := testenv.LookPath(t, "docker-compose")
	cmd := exec.Command(dc, "-f", file, "-p", "shop", "ps", "-q", "web")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.Host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose ps: %v\n%s", err, out)
	}
	for _, in := range ins {
		if !strings.Contains(string(out), in.Meta[docker.MetaContainer]) {
			t.Errorf("docker-compose ps does not list %s (%s):\n%s", in.ID, in.Meta[docker.MetaContainer], out)
		}
	}
}
