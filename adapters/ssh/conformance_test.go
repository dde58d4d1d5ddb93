package ssh_test

import (
	"testing"

	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestConformance runs the shared Backend suite against 5 sshd hosts (the
// suite wants up to 5 instances at once; hosts are a fixed pool).
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	adaptertest.RunBackend(t, func(t *testing.T) *adaptertest.BackendHarness {
		f := newFixture(t, fixtureOpts{hosts: 5})
		f.artifact("v1", nil)
		f.artifact("v2", nil)
		rels := map[string]*spec.Release{"v1": f.release("v1", fixtureOpts{}), "v2": f.release("v2", fixtureOpts{})}
		return &adaptertest.BackendHarness{
			Backend: f.backend,
			Release: func(v string) *spec.Release { return rels[v].Clone() },
		}
	})
}
