// Package testenv holds the small helpers every integration test in graylane
// shares: the GRAYLANE_INTEGRATION switch (a missing real server is a failure
// under `make test`, a skip under a bare `go test`), free loopback ports, the
// repository root, and BuildTool, which builds a heavy test server from its own
// nested tools module once and caches the binary across runs.
//
// Entry points: Require, Unavailable, BuildTool, FreePort.
package testenv
