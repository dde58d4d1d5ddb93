package webhook_test

import (
	"testing"

	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/spec"
)

// TestConformance runs the shared Backend suite against the fake external
// system (it runs exactly what it was last asked for).
func TestConformance(t *testing.T) {
	adaptertest.RunBackend(t, func(t *testing.T) *adaptertest.BackendHarness {
		s := newSystem(t)
		s.running = map[string]int{}
		return &adaptertest.BackendHarness{
			Backend: newBackend(t),
			Release: func(v string) *spec.Release { return s.release(t, v, "") },
		}
	})
}
