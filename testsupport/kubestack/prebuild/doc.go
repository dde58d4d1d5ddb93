// Command prebuild builds and caches the binaries testsupport/kubestack runs
// (the kubestack multi-call binary and kwok), so that a `make tools` step
// pays the cold build once, outside any test timeout:
//
//	go run ./testsupport/kubestack/prebuild
//
// Entry point: main, which calls kubestack.BuildBinaries.
package main
