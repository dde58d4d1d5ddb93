package docker

import (
	"context"
	"errors"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Releases this build cannot run are refused by Apply with the reason,
// before any engine is contacted.
func TestApplyRefusesWhatItCannotRun(t *testing.T) {
	b, err := New(Config{DefaultHost: spec.DockerHost{URL: "unix:///nonexistent/docker.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rel, err := spec.Parse([]byte("app: x\nversion: v1\nbackend:\n  type: docker\n  docker:\n    image: \"demo:{{.Version}}\"\n    port: 80\n    hosts: [\"ssh://deploy@h1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), rel, traffic.Replicas{"v1": 1}, adapters.NoStep); !errors.Is(err, adapters.ErrUnsupported) {
		t.Fatalf("ssh:// host: %v, want ErrUnsupported", err)
	}
	rel.Backend.Docker.Hosts = nil
	rel.Backend.Docker.Compose = &spec.DockerCompose{File: "/nonexistent/compose.yml", Service: "web"}
	if err := b.Apply(context.Background(), rel, traffic.Replicas{"v1": 1}, adapters.NoStep); !errors.Is(err, spec.ErrInvalid) {
		t.Fatalf("missing compose file: %v, want ErrInvalid", err)
	}
	if err := b.Apply(context.Background(), rel, traffic.Replicas{"v1;rm": 1}, adapters.NoStep); !errors.Is(err, spec.ErrInvalid) {
		t.Fatalf("bad version: %v, want ErrInvalid", err)
	}
}
