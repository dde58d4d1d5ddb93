package dockertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// The private engine runs a demo image with a published loopback port, its
// exec-form HEALTHCHECK reports healthy, and two engines side by side have
// separate bridges.
func TestEngineRunsDemoImage(t *testing.T) {
	testenv.IntegrationTest(t)
	e := Start(t, Options{})
	e.DemoImages(t, "demoapp:v1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := e.Client()
	port := nat.Port("8080/tcp")
	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: "demoapp:v1", Cmd: []string{"--version=v1", "--addr=0.0.0.0:8080"}, ExposedPorts: nat.PortSet{port: {}}},
		&container.HostConfig{PortBindings: nat.PortMap{port: {{HostIP: "127.0.0.1"}}}},
		&network.NetworkingConfig{}, nil, "smoke")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	var addr, health string
	testenv.Eventually(t, 30*time.Second, "the container healthy with its port published", func() error {
		in, err := cli.ContainerInspect(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b := in.NetworkSettings.Ports[port]; len(b) > 0 {
			addr = b[0].HostIP + ":" + b[0].HostPort
		}
		if in.State.Health != nil {
			health = in.State.Health.Status
		}
		return testenv.Check(addr != "" && health == "healthy", "address %q, health %q", addr, health)
	})
	if health != "healthy" || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("container: published at %q, health %q; want 127.0.0.1:port and healthy", addr, health)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Version") != "v1" {
		t.Fatalf("GET / through the published port: %s %q", resp.Status, body)
	}

	other := Start(t, Options{})
	if other.Bridge == e.Bridge || other.Subnet == e.Subnet {
		t.Fatalf("two engines share a network: %s %s and %s %s", e.Bridge, e.Subnet, other.Bridge, other.Subnet)
	}
	fmt.Fprintf(io.Discard, "%v", other)
}
