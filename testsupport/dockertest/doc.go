// Package dockertest starts a private Docker Engine (Debian's docker.io,
// dockerd 20.10, API 1.41) for integration tests and builds test images
// without a registry.
//
// The engine has its own data root, exec root, unix socket, pid file and
// daemon.json under a short directory in /tmp, runs with --storage-driver
// vfs, --iptables=false and --ip-masq=false, and gets a Linux bridge and
// address pool of its own (10.K.255.0/24 and 10.K.0.0/17, K claimed with a
// file lock), so several private engines (parallel test packages) never
// share docker0 or hand out the same container addresses. It is stopped by
// its pid. Published ports are reached on 127.0.0.1 through docker-proxy:
// tests never address containers by their bridge addresses.
//
// Images are imported from a tarball (as `docker import` does) holding a
// static (CGO_ENABLED=0) build of cmd/demoapp, with an exec-form
// HEALTHCHECK using `demoapp probe` (a scratch image has no shell).
//
// Entry points: Start (per test) or StartEngine (TestMain), then
// Engine.DemoImages, Engine.CrashImages, Engine.ImportImage and
// StaticBinary.
//
//	eng := dockertest.Start(t, dockertest.Options{})
//	eng.DemoImages(t, "demoapp:v1", "demoapp:v2")
//	// backend.docker.hosts: [eng.Host]
package dockertest
