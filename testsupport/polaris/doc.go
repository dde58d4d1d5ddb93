// Package polaris runs a real Nacos-protocol server for graylane's tests:
// Polaris (github.com/polarismesh/polaris v1.18.1, built from the nested
// module tools/polaris), which serves the Nacos v1 HTTP open API and the v2
// gRPC protocol that nacos-sdk-go v2 speaks. Real Nacos (Java) cannot run in
// graylane's test environment; Polaris is an independent production server,
// so tests against it exercise the real protocol, not a mock.
//
// Entry points: Start, which returns a *Server on free 127.0.0.1 ports with
// a private store, killed when the test ends; Server.NacosAddr for clients;
// Server.Kill and Server.Restart (same ports, same store) for tests that
// take the centre down mid-rollout; Server.PublishConfig, GetConfig and
// DeleteConfig to play an operator at the Nacos console (a gRPC client the
// Server closes before Kill, so it never has to reconnect); BuildBinary for
// a prebuild step (go run ./testsupport/polaris/prebuild).
//
// How Polaris differs from Nacos, as seen with nacos-sdk-go v2.3.2 (details
// in docs/nacos.md and shared/notes/nacos-server.md):
//   - reads lag writes by up to ~1 s (Polaris refreshes its cache every
//     second), and a just-updated dataId now and then reads as missing for
//     a few seconds: tests poll for the expected state with a deadline;
//   - casMd5 is ignored on updates (every conditional update conflicts);
//   - content published over the v1 HTTP API is whitespace-trimmed;
//   - instances registered outside DEFAULT_GROUP are invisible, and batch
//     registration adds instead of replacing;
//   - beta (gray) publishing is accepted and ignored;
//   - instance metadata comes back with extra "internal-*" keys;
//   - a client must set UpdateCacheWhenEmpty to see the last instance go;
//   - SIGTERM takes ~6 s, so Kill uses SIGKILL.
package polaris
