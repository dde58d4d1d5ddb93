// Package adaptertest is the conformance suite every graylane adapter
// passes: the process backend and built-in proxy here, and the nginx, SSH,
// webhook and Kubernetes adapters.
//
// Entry points: RunBackend with a BackendHarness and RunRouter with a
// RouterHarness. A harness factory gets each case's *testing.T, returns a
// fresh adapter (registering its teardown with t.Cleanup) and a Release
// function giving a valid release of the app under test for that adapter:
//
//	func TestConformance(t *testing.T) {
//		adaptertest.RunBackend(t, func(t *testing.T) *adaptertest.BackendHarness {
//			b := newBackend(t) // torn down by t.Cleanup
//			return &adaptertest.BackendHarness{
//				Backend: b,
//				Release: func(v string) *spec.Release { return myRelease("conf", v) },
//			}
//		})
//	}
//
// Cases wait by polling Observe (or probing through the router) against a
// deadline; they never sleep to order events. Helpers for adapters that run
// cmd/demoapp: BuildDemoApp and HTTPProbe.
package adaptertest
