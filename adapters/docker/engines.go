package docker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker/docker/client"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/sshdial"
	"github.com/graylane/graylane/spec"
)

// engine is one Docker Engine graylane talks to.
type engine struct {
	host spec.DockerHost
	cli  *client.Client
}

// engines is the Backend's pool of engine clients, one per host
// definition (URL, TLS directory).
type engines struct {
	cfg *Config

	mu  sync.Mutex
	all map[string]*engine
	ssh *sshdial.Pool // ssh:// engines' connections, created on first use
}

func hostKey(h spec.DockerHost) string { return h.URL + "|" + h.TLSDir }

// get returns the client of h, creating it on first use. The engine
// returned is the caller's own (its host is h, whose name, publishIP and
// address may change with the spec); the client in it is shared. Creating a
// client does not connect; the first call does (and negotiates the API
// version, so a 20.10 engine with API 1.41 is spoken to in its version).
func (p *engines) get(h spec.DockerHost) (*engine, error) {
	key := hostKey(h)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.all[key]; e != nil {
		return &engine{host: h, cli: e.cli}, nil
	}
	opts := []client.Opt{client.WithAPIVersionNegotiation(), client.WithUserAgent("graylane")}
	u, err := url.Parse(h.URL)
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", h.URL, err)
	}
	switch u.Scheme {
	case "unix", "tcp":
		opts = append(opts, client.WithHost(h.URL))
		if h.TLSDir != "" {
			opts = append(opts, client.WithTLSClientConfig(
				filepath.Join(h.TLSDir, "ca.pem"), filepath.Join(h.TLSDir, "cert.pem"), filepath.Join(h.TLSDir, "key.pem")))
		}
	case "ssh":
		if p.cfg.SSH == nil {
			return nil, fmt.Errorf("engine %s: ssh:// engines need graylane's ssh.keyFile and ssh.knownHosts: %w", h.URL, adapters.ErrUnsupported)
		}
		pool, err := p.sshPool()
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", h.URL, err)
		}
		opts = append(opts, client.WithHost("http://docker.invalid"), client.WithDialContext(newSSHDialer(pool, u).dial))
	default:
		return nil, fmt.Errorf("engine %s: scheme %q is not unix, tcp or ssh", h.URL, u.Scheme)
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", h.URL, err)
	}
	p.all[key] = &engine{host: h, cli: cli}
	return &engine{host: h, cli: cli}, nil
}

func (p *engines) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.all {
		e.cli.Close()
		delete(p.all, k)
	}
	if p.ssh != nil {
		p.ssh.Close()
	}
}

// engineError wraps an error from an engine call with the engine's name
// and URL, keeping the engine's own message.
func (e *engine) err(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s on engine %s: %w", what, e.host.HostName(), err)
	}
	return fmt.Errorf("%s on engine %s (%s): %w", what, e.host.HostName(), e.host.URL, err)
}

// engineDown reports whether err says the engine cannot be reached (as
// opposed to the engine refusing a request).
func engineDown(err error) bool {
	if err == nil {
		return false
	}
	if client.IsErrConnectionFailed(err) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "Cannot connect to the Docker daemon") || strings.Contains(s, "connection refused") ||
		strings.Contains(s, "no such file or directory") && strings.Contains(s, "dial unix") || strings.Contains(s, "i/o timeout")
}
