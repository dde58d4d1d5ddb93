// Package testenv holds what every graylane test shares: the two test
// tiers, the one polling helper, and small helpers for real servers.
//
// Tiers (docs/testing.md): a test that starts a real server or program
// begins with IntegrationTest(t). Without GRAYLANE_INTEGRATION=1 that skips
// it, so a bare `go test ./...` (and `make test-unit`) runs the unit tier
// only, whatever the machine has installed; with it (`make test`) the test
// runs and a server it cannot start fails it (Unavailable, Require,
// LookPath). The helpers that start servers call AssertIntegrationTest, and
// TestIntegrationMarkers checks the source, so a test that forgets the
// marker fails.
//
// Polling: Eventually (and Poll under it, for code that returns errors) is
// the only wait-for-a-condition loop in graylane's tests.
//
// Also: FreePort, RepoRoot, Logger, ProcessTempDir (a directory for a test
// process's shared files, swept once the process is gone), and BuildTool,
// which builds a heavy test server from its own nested tools module once
// and caches the binary across runs.
//
// Entry points: IntegrationTest, Eventually, Unavailable, BuildTool, FreePort.
package testenv
