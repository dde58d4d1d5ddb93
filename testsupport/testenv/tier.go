package testenv

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// EnvIntegration is the environment variable that turns the integration
// tier on: GRAYLANE_INTEGRATION=1 (set by `make test`).
const EnvIntegration = "GRAYLANE_INTEGRATION"

// Integration reports whether the run is an integration run
// (GRAYLANE_INTEGRATION=1, set by `make test`): integration tests run and a
// missing real server fails them.
func Integration() bool { return os.Getenv(EnvIntegration) == "1" }

// marked holds the names of the tests (and benchmarks) that called
// IntegrationTest and have not ended yet.
var marked sync.Map

// IntegrationTest marks t as an integration test: a test or benchmark that
// starts a real server or program (embedded etcd, Polaris, the Apollo test
// server, kube-apiserver and kwok, nginx, sshd, the graylane binary, a JDK,
// a built demo binary). It is the first statement of every such test.
//
// Without GRAYLANE_INTEGRATION=1 it skips t, so a bare `go test ./...` runs
// the unit tier and nothing else, whatever the machine has installed. With
// it, t runs, and a server it cannot start fails it (Unavailable).
//
// The helpers that start servers (etcdtest.Start, polaris.Start,
// kubestack.Start, nginxtest.Start, sshdtest.Start, graylanetest.Start, and
// Require, LookPath, BuildTool and Unavailable here) call
// AssertIntegrationTest, so a test that forgets the marker fails in every
// tier; TestIntegrationMarkers checks the same statically.
func IntegrationTest(t testing.TB) {
	t.Helper()
	if !Integration() {
		t.Skipf("integration test: runs with %s=1 (make test)", EnvIntegration)
	}
	name := t.Name()
	marked.Store(name, struct{}{})
	t.Cleanup(func() { marked.Delete(name) })
}

// IsIntegrationTest reports whether t, or a test that t runs in (a parent
// of a subtest), called IntegrationTest.
func IsIntegrationTest(t testing.TB) bool {
	name := t.Name()
	for {
		if _, ok := marked.Load(name); ok {
			return true
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return false
		}
		name = name[:i]
	}
}

// AssertIntegrationTest fails t unless it is marked by IntegrationTest.
// Every helper that starts a real server calls it first, naming what it
// starts: an unmarked test would otherwise start servers in the unit tier
// (or be skipped under a bare `go test` depending on the machine).
func AssertIntegrationTest(t testing.TB, what string) {
	t.Helper()
	if !IsIntegrationTest(t) {
		t.Fatalf("%s starts %s but is not marked as an integration test: call testenv.IntegrationTest(t) first (see docs/testing.md)", t.Name(), what)
	}
}
