package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/nginx"
	"github.com/graylane/graylane/adapters/process"
	"github.com/graylane/graylane/adapters/ssh"
	"github.com/graylane/graylane/adapters/webhook"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// resolver maps a release's backend and traffic sections to adapters. The
// adapters graylane knows are wired here explicitly (no init-time
// registries).
type resolver struct {
	// releases looks up an app's release in force (set once the engine
	// exists); adapters use it to observe apps before their first Apply.
	releases func(ctx context.Context, app string) (*spec.Release, error)

	mu        sync.Mutex
	appType   map[string]string // app -> backend type, as last resolved
	backends  map[string]adapters.Backend
	routers   map[string]func(*spec.Release) (adapters.TrafficRouter, error)
	notifiers []adapters.Notifier
	closers   []func()
	gray      *grayWiring // wiring_gray.go
	// shard is set in ha.mode shard: backends and routers tied to this
	// host (process, the built-in proxy, a local nginx) are refused, as
	// another replica may drive the app next.
	shard bool
}

// newAdapters wires the backends and routers of one environment (env ""
// for a graylane without environments) under its data directory.
func newAdapters(v *viper.Viper, dataDir, env string, log *slog.Logger) (*resolver, error) {
	r := &resolver{appType: map[string]string{}, backends: map[string]adapters.Backend{}, routers: map[string]func(*spec.Release) (adapters.TrafficRouter, error){}}
	releases := func(ctx context.Context, app string) (*spec.Release, error) {
		if r.releases == nil {
			return nil, errors.New("engine not started")
		}
		return r.releases(ctx, app)
	}

	// The built-in proxy (traffic.type proxy) serves every backend: its
	// endpoints are the ready instances of the app's backend (wiring_proxy.go).
	proxyRouter, err := r.addProxy(v, dataDir, log)
	if err != nil {
		return nil, err
	}

	stateDir := v.GetString("process.stateDir")
	if stateDir == "" {
		stateDir = filepath.Join(dataDir, "process")
	}
	proc, err := process.New(process.Config{StateDir: stateDir, Logger: log, Drainer: proxyRouter})
	if err != nil {
		return nil, fmt.Errorf("process backend in %s: %w", stateDir, err)
	}
	r.backends[spec.BackendProcess] = proc
	r.notifiers = append(r.notifiers, proc)
	r.closers = append(r.closers, func() { _ = proc.Close() })
	if v.GetBool("process.stopOnExit") {
		// closers run last first: stop the instances, then close
		r.closers = append(r.closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := proc.StopAll(ctx); err != nil {
				log.Warn("stopping process instances on exit", "err", err)
			} else {
				log.Info("process instances stopped (process.stopOnExit); the next start brings them back")
			}
		})
	}

	// SSH hosts: needs a client key and known_hosts (host keys are verified).
	home, _ := os.UserHomeDir()
	keyFile := orDefault(v.GetString("ssh.keyFile"), filepath.Join(home, ".ssh", "id_ed25519"))
	known := list(v, "ssh.knownHosts")
	if len(known) == 0 {
		known = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	if fileExists(keyFile) && fileExists(known[0]) {
		sb, err := ssh.New(ssh.Config{KeyFile: keyFile, KnownHostsFiles: known,
			WorkDir:  orDefault(v.GetString("ssh.workDir"), filepath.Join(dataDir, "ssh")),
			Parallel: v.GetInt("ssh.parallel"), Releases: releases, Logger: log.With("component", "ssh")})
		if err != nil {
			return nil, fmt.Errorf("ssh backend: %w", err)
		}
		r.backends[spec.BackendSSH] = sb
		r.notifiers = append(r.notifiers, sb)
	} else {
		r.unavailable(spec.BackendSSH, fmt.Sprintf("set ssh.keyFile (%s) and ssh.knownHosts (%s) to files that exist", keyFile, known[0]))
	}

	// Webhooks: always available; the secret may come from the spec's secretEnv.
	wb, err := webhook.New(webhook.Config{Secret: []byte(v.GetString("webhook.secret")), Releases: releases, Logger: log.With("component", "webhook"), Env: env,
		Reassert: v.GetDuration("webhook.reassert")})
	if err != nil {
		return nil, fmt.Errorf("webhook backend: %w", err)
	}
	r.backends[spec.BackendWebhook] = wb

	// Kubernetes: in-cluster or a kubeconfig (wiring_kubernetes.go).
	if err := r.addKubernetes(v, log); err != nil {
		return nil, err
	}

	// Docker Engines named by each release, or docker.host (wiring_docker.go).
	if err := r.addDocker(v, releases, proxyRouter, log); err != nil {
		return nil, err
	}

	// nginx: graylane owns nginx.includeDir, which nginx.conf includes.
	if dir := v.GetString("nginx.includeDir"); dir != "" {
		nr, err := nginx.New(nginx.Config{
			Binary: v.GetString("nginx.binary"), Prefix: v.GetString("nginx.prefix"), ConfFile: v.GetString("nginx.conf"),
			PIDFile: v.GetString("nginx.pidFile"), IncludeDir: dir, StatusAddr: v.GetString("nginx.statusAddr"),
			ErrorLog: v.GetString("nginx.errorLog"), Logger: log.With("component", "nginx"),
			Instances: nginx.InstancesFunc(r.observeAny),
		})
		if err != nil {
			return nil, fmt.Errorf("nginx router: %w", err)
		}
		r.routers["nginx"] = func(*spec.Release) (adapters.TrafficRouter, error) { return nr, nil }
		// keep upstreams current as instances come and go
		for _, n := range r.notifiers {
			n.Notify(func(app string) { go func() { _ = nr.Sync(context.Background(), app) }() })
		}
	} else {
		r.routers["nginx"] = func(*spec.Release) (adapters.TrafficRouter, error) {
			return nil, fmt.Errorf("traffic.type nginx needs nginx.includeDir in graylane's configuration: %w", adapters.ErrUnsupported)
		}
	}
	for _, n := range r.notifiers {
		n.Notify(proxyRouter.Kick) // the proxy's endpoints follow every backend
	}
	return r, nil
}

// unavailable registers a backend type that is known but not configured.
func (r *resolver) unavailable(typ, why string) {
	r.backends[typ] = unconfigured{typ: typ, why: why}
}

type unconfigured struct{ typ, why string }

func (u unconfigured) Observe(context.Context, string) ([]adapters.Instance, error) {
	return nil, fmt.Errorf("backend %s is not configured: %s: %w", u.typ, u.why, adapters.ErrUnsupported)
}

func (u unconfigured) Apply(context.Context, *spec.Release, traffic.Replicas, adapters.Step) error {
	return fmt.Errorf("backend %s is not configured: %s: %w", u.typ, u.why, adapters.ErrUnsupported)
}

// observeAny observes an app on the backend it was last resolved to.
func (r *resolver) observeAny(ctx context.Context, app string) ([]adapters.Instance, error) {
	r.mu.Lock()
	typ := r.appType[app]
	r.mu.Unlock()
	b, ok := r.backends[typ]
	if !ok {
		return nil, fmt.Errorf("app %s has no known backend yet", app)
	}
	return b.Observe(ctx, app)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func (r *resolver) Backend(rel *spec.Release) (adapters.Backend, error) {
	r.mu.Lock()
	r.appType[rel.App] = rel.Backend.Type
	r.mu.Unlock()
	b, ok := r.backends[rel.Backend.Type]
	if !ok {
		return nil, fmt.Errorf("backend.type %q is not available in this graylane: %w", rel.Backend.Type, adapters.ErrUnsupported)
	}
	if r.shard && rel.Backend.Type == spec.BackendProcess {
		return nil, fmt.Errorf("backend.type process cannot run in ha.mode shard: its instances run on the graylane host driving the app, and the app may move to another replica (use webhook, kubernetes, ssh or registry): %w", adapters.ErrUnsupported)
	}
	return r.trackGray(rel, b), nil
}

// Unload implements adapters.Unloader for every backend that keeps
// per-app memory: another replica drives the app now.
func (r *resolver) Unload(app string) {
	for _, b := range r.backends {
		if u, ok := b.(adapters.Unloader); ok {
			u.Unload(app)
		}
	}
}

func (r *resolver) Router(rel *spec.Release) (adapters.TrafficRouter, error) {
	t := ""
	if rel.Traffic != nil {
		t = rel.Traffic.Type
	}
	if err := grayCheck(rel); err != nil {
		return nil, err
	}
	if t == "none" {
		return nil, nil
	}
	if t == "" {
		t = grayTraffic(rel) // gray for the registry backend
	}
	if t == "" && rel.Backend.Type == spec.BackendKubernetes {
		return r.kubernetesRouter(rel)
	}
	if t == "" {
		if rel.Backend.Type != spec.BackendProcess {
			return nil, nil
		}
		t = "proxy"
	}
	f, ok := r.routers[t]
	if !ok {
		return nil, fmt.Errorf("traffic.type %q is not available in this graylane: %w", t, adapters.ErrUnsupported)
	}
	if r.shard && (t == "proxy" || t == "nginx") {
		return nil, fmt.Errorf("traffic.type %s cannot run in ha.mode shard: it routes on the graylane host driving the app, and the app may move to another replica (use gray, the Kubernetes service, or none): %w", t, adapters.ErrUnsupported)
	}
	return f(rel)
}

// Notify forwards every adapter's change notifications to fn.
func (r *resolver) Notify(fn func(app string)) {
	for _, n := range r.notifiers {
		n.Notify(fn)
	}
}

// Close releases adapters; instances keep running for adoption.
func (r *resolver) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}
