// Command polaris is Tencent's Polaris service-governance server,
// github.com/polarismesh/polaris v1.18.1, built from graylane's pinned
// versions. graylane's tests use it as a real Nacos-protocol server: Polaris
// implements the Nacos v1 HTTP open API and the v2 gRPC protocol that
// nacos-sdk-go v2 speaks (configs, listeners, instances, subscriptions).
// Real Nacos (Java) cannot be run in graylane's test environment; Polaris is
// an independent production server, so it is an honest peer for the Nacos
// source in configsync/nacos.
//
// Upstream's main and its plugin list (plugin.go) are package main and
// cannot be imported, so this wrapper repeats them unchanged: it blank-imports
// the same plugins and calls cmd.Execute. It lives in its own module so that
// Polaris' ~40 dependencies (an older gRPC, go-restful, envoy's
// go-control-plane) stay out of graylane's go.mod; the go.mod keeps upstream's
// replace of gopkg.in/yaml.v2 so the server reads its YAML exactly as
// upstream tested it.
//
// Tests do not build it by hand: testsupport/polaris builds it once through
// testenv.BuildToolPath, caches the binary (rebuilt only when this module's
// files change), and starts it with a per-test configuration. Entry point:
// main (upstream's main).
package main
