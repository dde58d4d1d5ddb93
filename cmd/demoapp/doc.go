// Command demoapp is the tiny HTTP server graylane's tests and demos deploy:
// each instance knows its code version and says so.
//
//	demoapp --version v2 --addr 127.0.0.1:9001
//
// Endpoints:
//
//	GET /         the version as the body ("v2\n") and in the X-Version
//	              header; also X-Pid. ?sleep=1.5s delays the answer (at most
//	              60s), which makes a slow in-flight request for drain tests.
//	GET /healthz  200 "ok" (503 with --fail-health).
//	GET /info     JSON: version, pid, working directory and every DEMO_*
//	              environment variable, so tests can check templated env and
//	              working directories.
//
// With --config-files it loads config files through sdk/config from etcd
// (--config-etcd), Nacos (--config-nacos) and/or Apollo (--config-apollo),
// reading the copy bound to its version when there is one, reloading on
// change, and adds:
//
//	GET /graylane/config  the report graylane probes: the checksum of the
//	                      config it loaded (JSON, configwire.Report)
//	GET /config           what it loaded: identity, checksum, files, sources
//
// /healthz answers 503 until every file was loaded once, and / carries the
// loaded checksum in X-Config-Checksum. Location flags take {app}, {file},
// {base} and {ext} placeholders, e.g. --config-etcd-key /config/{app}/{file}.
//
// With --gray-etcd it is a service of a gray call chain through the SDK:
// it registers in etcd as --gray-app at its version (/healthz answers 503
// until it is registered), follows the published gray documents, and adds
//
//	GET /chain  "app=version" and, with --gray-calls next, the answer of
//	            next's /chain called through the SDK: "a=v2,b=v2,c=v2"
//
// Flags useful for tests of unhealthy or slow instances:
//
//	--fail-health         /healthz always answers 503
//	--start-delay 2s      wait before listening (the port refuses meanwhile)
//	--shutdown-timeout    bound on the graceful shutdown (default 30s)
//
// `demoapp probe [--url http://127.0.0.1:8080/healthz] [--timeout 2s]` GETs
// a health URL once and exits 0 on a 2xx answer, 1 otherwise: an exec-form
// Docker HEALTHCHECK for a scratch image, which has no shell or curl
// (HEALTHCHECK CMD ["/bin/demoapp","probe"]).
//
// On SIGTERM or SIGINT it stops accepting connections, lets in-flight
// requests finish (bounded by --shutdown-timeout) and exits 0.
package main
