// Command prebuild builds and caches graylane and demoapp of the previous
// release (graylanetest.PreviousRelease) that the upgrade tests run, so
// that a `make tools` step pays the cold build once, outside any test
// timeout:
//
//	go run ./testsupport/graylanetest/prebuild
//
// Entry point: main, which calls graylanetest.BuildRelease.
package main
