package docker_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/internal/sshdial"
	"github.com/graylane/graylane/testsupport/sshdtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// An ssh:// engine: graylane logs in to a real OpenSSH server with its
// key, verifies the host key, and reaches the engine through `docker
// system dial-stdio` on that host (here the private engine's socket, named
// in the URL's path). The app's containers run and serve as on a local
// engine; a host whose key is not in known_hosts is refused.
func TestSSHEngine(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	testenv.LookPath(t, "docker") // the docker CLI on the "remote" host
	c := sshdtest.Start(t, 1)
	const app = "viassh"
	removeApp(t, e, app)
	b := newBackend(t, e, func(cfg *docker.Config) {
		cfg.SSH = &docker.SSHConfig{KeyFile: c.KeyFile, KnownHostsFiles: []string{c.KnownHosts}}
	})
	url := "ssh://" + c.User + "@" + c.Hosts[0].Addr + strings.TrimPrefix(e.Host, "unix://")
	rel := release(t, app, "v1", url, "")
	apply(t, b, rel, traffic.Replicas{"v1": 2})
	for _, in := range waitReady(t, b, app, traffic.Replicas{"v1": 2}) {
		if in.Meta[docker.MetaHost] != c.Hosts[0].IP || !strings.HasPrefix(in.Addr, c.Hosts[0].IP+":") {
			t.Fatalf("%s: host %s addr %s; want the ssh host's name and address", in.ID, in.Meta[docker.MetaHost], in.Addr)
		}
		resp, err := http.Get("http://" + in.Addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	apply(t, b, rel, traffic.Replicas{})
	waitReady(t, b, app, traffic.Replicas{})

	// an unknown host key: refused, nothing runs
	empty := t.TempDir() + "/known_hosts"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b2 := newBackend(t, e, func(cfg *docker.Config) {
		cfg.SSH = &docker.SSHConfig{KeyFile: c.KeyFile, KnownHostsFiles: []string{empty}}
	})
	if err := b2.Apply(context.Background(), rel, traffic.Replicas{"v1": 1}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	_, err := b2.Observe(context.Background(), app)
	if !errors.Is(err, sshdial.ErrHostKeyUnknown) || !strings.Contains(err.Error(), c.Hosts[0].Addr) {
		t.Fatalf("Observe through an ssh host with an unknown key = %v, want known_hosts' refusal naming %s", err, c.Hosts[0].Addr)
	}
	// Close waits for every worker in flight, so a container the refused
	// backend had started anywhere (say on its default engine, which is
	// this same dockerd) would be listed now.
	b2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	left, err := e.Client().ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelApp+"="+app))})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("the backend refused by knownhosts left %d container(s) of %s on the engine; want none", len(left), app)
	}
	// and without ssh settings, ssh:// engines are refused outright
	b3 := newBackend(t, e)
	if err := b3.Apply(context.Background(), rel, traffic.Replicas{"v1": 1}, adapters.NoStep); !errors.Is(err, adapters.ErrUnsupported) {
		t.Fatalf("ssh:// without ssh settings: %v", err)
	}
}
