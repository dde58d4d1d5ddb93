package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/process"
	"github.com/graylane/graylane/spec"
)

// resolver maps a release's backend and traffic sections to adapters. The
// adapters graylane knows are wired here explicitly (no init-time
// registries).
type resolver struct {
	backends  map[string]adapters.Backend
	routers   map[string]func(*spec.Release) (adapters.TrafficRouter, error)
	notifiers []adapters.Notifier
	closers   []func()
}

func newAdapters(v *viper.Viper, dataDir string, log *slog.Logger) (*resolver, error) {
	r := &resolver{backends: map[string]adapters.Backend{}, routers: map[string]func(*spec.Release) (adapters.TrafficRouter, error){}}

	stateDir := v.GetString("process.stateDir")
	if stateDir == "" {
		stateDir = filepath.Join(dataDir, "process")
	}
	proc, err := process.New(process.Config{StateDir: stateDir, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("process backend in %s: %w", stateDir, err)
	}
	r.backends[spec.BackendProcess] = proc
	r.notifiers = append(r.notifiers, proc)
	r.closers = append(r.closers, func() { _ = proc.Close() })
	procRouter := proc.Router()
	r.routers["proxy"] = func(rel *spec.Release) (adapters.TrafficRouter, error) {
		if rel.Backend.Type != spec.BackendProcess {
			return nil, fmt.Errorf("traffic.type proxy needs backend.type process (got %s): %w", rel.Backend.Type, adapters.ErrUnsupported)
		}
		if rel.Backend.Process.Proxy == "" {
			return nil, nil
		}
		return procRouter, nil
	}
	return r, nil
}

func (r *resolver) Backend(rel *spec.Release) (adapters.Backend, error) {
	b, ok := r.backends[rel.Backend.Type]
	if !ok {
		return nil, fmt.Errorf("backend.type %q is not available in this graylane: %w", rel.Backend.Type, adapters.ErrUnsupported)
	}
	return b, nil
}

func (r *resolver) Router(rel *spec.Release) (adapters.TrafficRouter, error) {
	t := ""
	if rel.Traffic != nil {
		t = rel.Traffic.Type
	}
	if t == "none" {
		return nil, nil
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
