package enginetest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Signalling is a Backend and engine Resolver with instantly ready
// instances. It is a stand-in for a real backend in latency benchmarks of
// the control path (centre -> source -> engine -> backend call), where a
// real backend's own start-up time would only add noise.
type Signalling struct {
	mu     sync.Mutex
	want   map[string]traffic.Replicas
	seen   map[string]bool
	notify func(string)
	// First receives "app/version" the first time a version of an app is
	// asked for, with the time of that Apply call.
	First chan Action
}

// Action is one first request for a version.
type Action struct {
	App, Version string
	At           time.Time
}

var (
	_ adapters.Backend  = (*Signalling)(nil)
	_ adapters.Notifier = (*Signalling)(nil)
)

// NewSignalling returns a Signalling with room for buffer unread actions.
func NewSignalling(buffer int) *Signalling {
	return &Signalling{want: map[string]traffic.Replicas{}, seen: map[string]bool{}, First: make(chan Action, buffer)}
}

// Notify implements adapters.Notifier.
func (s *Signalling) Notify(fn func(string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify = fn
}

// Observe implements adapters.Backend.
func (s *Signalling) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []adapters.Instance
	for v, n := range s.want[app] {
		for i := 0; i < n; i++ {
			out = append(out, adapters.Instance{ID: fmt.Sprintf("%s-%s-%d", app, v, i), Version: v, Ready: true})
		}
	}
	return out, nil
}

// Apply implements adapters.Backend.
func (s *Signalling) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := fmt.Sprint(s.want[rel.App]) != fmt.Sprint(want)
	s.want[rel.App] = want
	if changed && s.notify != nil {
		go s.notify(rel.App)
	}
	for v, n := range want {
		if key := rel.App + "/" + v; n > 0 && !s.seen[key] {
			s.seen[key] = true
			s.First <- Action{App: rel.App, Version: v, At: now}
		}
	}
	return nil
}

// Backend implements the engine's Resolver.
func (s *Signalling) Backend(*spec.Release) (adapters.Backend, error) { return s, nil }

// Router implements the engine's Resolver: no router.
func (s *Signalling) Router(*spec.Release) (adapters.TrafficRouter, error) { return nil, nil }

// WaitFor returns the time version of app was first asked for.
func (s *Signalling) WaitFor(app, version string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case a := <-s.First:
			if a.App == app && a.Version == version {
				return a.At, nil
			}
		case <-deadline:
			return time.Time{}, fmt.Errorf("no backend action for %s %s within %s", app, version, timeout)
		}
	}
}

// Doc is a minimal valid release of app at version (rolling, 1 replica).
func Doc(app, version string) string {
	return fmt.Sprintf("app: %s\nversion: %s\nreplicas: 1\nstrategy: {type: rolling, maxSurge: 1, maxUnavailable: 0}\nbackend: {type: process, process: {command: [x]}}\n", app, version)
}
