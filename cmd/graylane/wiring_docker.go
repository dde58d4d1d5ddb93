package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/spec"
)

// dockerDefaults are the configuration keys of the docker backend (README:
// Backends, docs/backends.md).
var dockerDefaults = map[string]any{
	"docker.host":       "",   // empty: $DOCKER_HOST, else unix:///var/run/docker.sock
	"docker.drainDelay": "1s", // between taking an instance out of traffic and docker stop
	"docker.stallAfter": docker.DefaultStallAfter,
	"docker.workDir":    "", // relative compose files: empty is graylane's working directory
}

// addDocker registers the docker backend. It connects to no engine until
// an app uses one, so it is always available; a release names its engines
// in backend.docker.hosts, else docker.host is used.
func (r *resolver) addDocker(v *viper.Viper, releases func(context.Context, string) (*spec.Release, error), drainer adapters.Drainer, log *slog.Logger) error {
	for k, d := range dockerDefaults {
		v.SetDefault(k, d)
	}
	host := v.GetString("docker.host")
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = spec.DockerDefaultHost
	}
	// ssh:// engines log in with the ssh backend's key and known_hosts
	var sshCfg *docker.SSHConfig
	home, _ := os.UserHomeDir()
	keyFile := orDefault(v.GetString("ssh.keyFile"), filepath.Join(home, ".ssh", "id_ed25519"))
	known := list(v, "ssh.knownHosts")
	if len(known) == 0 {
		known = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	if fileExists(keyFile) && fileExists(known[0]) {
		sshCfg = &docker.SSHConfig{KeyFile: keyFile, KnownHostsFiles: known}
	}
	b, err := docker.New(docker.Config{
		SSH:         sshCfg,
		DefaultHost: spec.DockerHost{URL: host},
		Logger:      log.With("component", "docker"),
		Releases:    releases,
		Drainer:     drainer,
		WorkDir:     v.GetString("docker.workDir"),
		DrainDelay:  v.GetDuration("docker.drainDelay"),
		StallAfter:  v.GetInt("docker.stallAfter"),
	})
	if err != nil {
		return fmt.Errorf("docker backend: %w", err)
	}
	r.backends[spec.BackendDocker] = b
	r.notifiers = append(r.notifiers, b)
	r.closers = append(r.closers, func() { _ = b.Close() })
	return nil
}
