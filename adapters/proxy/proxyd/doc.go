// Package proxyd runs graylane's built-in proxy as a process of its own,
// `graylane proxy`, so that the data plane outlives the control plane: when
// graylane dies or restarts, the proxies keep serving with their last
// routes, and a restarted graylane adopts the running proxy process as it
// adopts instances.
//
// Entry points:
//
//   - Serve is the proxy process: it holds an exclusive lock on its
//     directory, restores the routes of Dir/routes.json (proxy.Local), and
//     takes updates from graylane on the control socket Dir/control.sock
//     (Handler).
//   - TuneGC paces the process's garbage collector by a heap budget (GOGC
//     off, a memory limit) with a GOGC percent fallback for a live heap
//     above half the budget (gc.go).
//   - Client is the proxy.DataPlane graylane drives over that socket.
//   - Supervisor, in graylane, adopts the running proxy process (its
//     control socket answers) or starts one, and restarts it if it dies.
//
// The control API (HTTP/1.1 over the Unix socket, JSON; every body carries
// "schema": "graylane.proxyd/v1"):
//
//	GET    /v1/health                  {"pid", "version", "apps"}
//	GET    /v1/apps                    ["app", ...]
//	GET    /v1/apps/{app}              proxy.Routes (404: no proxy for app)
//	PUT    /v1/apps/{app}              proxy.Update -> {"routes", "error"}
//	GET    /v1/apps/{app}/inflight     ?addr=host:port -> {"inflight": n}
//	DELETE /v1/apps/{app}
//
// Only the user graylane runs as can use the socket (mode 0600 in a 0700
// directory): it carries routes and the trust secrets.
package proxyd
