// Package helmtool builds and runs tools/helm (graylane-helm: `helm lint`
// and `helm template` through Helm's Go SDK, helm.sh/helm/v4) for the
// tests of graylane's Helm chart. The tool lives in its own module so Helm
// stays out of graylane's go.mod; it is built once and cached under
// testenv.CacheDir()/bin, keyed on the module's sources, like the
// kubestack binaries. Prebuild it with `go run ./testsupport/helmtool/prebuild`
// (part of `make tools`).
//
// Entry points: Build, Lint, Template.
package helmtool
