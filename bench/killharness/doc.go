// Package killharness is a harness, not a test: it kills graylane with
// SIGKILL at random points of canaries, under continuous load through the
// built-in proxy, as many times as asked, and reports failed requests and
// requests that reached a version outside the split (issue 14's goal: 0
// of both over 100 kills). It is built only with the killharness tag:
//
//	make build && GRAYLANE_INTEGRATION=1 go test -tags killharness -run Kills -v -timeout 60m ./bench/killharness -kills 100
//
// docs/benchmarks.md records its figures.
package killharness
