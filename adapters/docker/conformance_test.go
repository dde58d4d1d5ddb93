package docker_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"

	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/spec"
)

// TestConformance runs the shared Backend suite against containers on a
// private Docker Engine.
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	var n atomic.Int32
	adaptertest.RunBackend(t, func(t *testing.T) *adaptertest.BackendHarness {
		app := fmt.Sprintf("conf%d", n.Add(1))
		removeApp(t, e, app)
		b := newBackend(t, e)
		return &adaptertest.BackendHarness{
			Backend:    b,
			Release:    func(v string) *spec.Release { return release(t, app, v, e.Host, "") },
			Eventually: 90 * time.Second,
		}
	})
}
