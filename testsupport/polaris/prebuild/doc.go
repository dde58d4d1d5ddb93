// Command prebuild builds and caches the Polaris server binary that
// testsupport/polaris runs, so that a `make tools` step pays the cold build
// (1.5-3.5 minutes on 2 cores) once, outside any test timeout:
//
//	go run ./testsupport/polaris/prebuild
//
// Entry point: main, which calls polaris.BuildBinary.
package main
