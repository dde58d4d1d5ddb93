// Command prebuild builds (or finds in the cache) tools/helm's graylane-helm
// binary, so a test run does not pay for the cold build: `make tools` runs
// it. Entry point: main.
package main
