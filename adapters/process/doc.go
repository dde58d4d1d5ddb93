// Package process is graylane's embedded default backend: it runs an app's
// instances as local processes. Their traffic goes through the app's router,
// by default the built-in proxy (adapters/proxy), which follows the ready
// instances Observe reports.
//
// Entry point: New(Config) returns a *Backend (an adapters.Backend,
// adapters.Notifier and adapters.Forgetter). Config.Drainer (graylane wires
// the proxy's Router) drains an instance before it is stopped.
//
// # Instances
//
// For each app and version, instances occupy slots 0..n-1 with the IDs
// {app}-{version}-{slot}. Apply records the desired replicas and each slot's
// supervisor converges: it picks a free port on backend.process.host
// (default 127.0.0.1), renders backend.process.command, dir and env
// ({{.App}} {{.Version}} {{.Addr}} {{.Port}} {{.Slot}} {{.InstanceID}}),
// executes the command directly (never through a shell) in its own process
// group, with stdout and stderr appended to StateDir/apps/{app}/logs/{id}.log
// (files, not pipes, so instances survive graylane). It probes health.path
// every health.interval (timeout health.timeout): one pass makes the
// instance ready (notified, so the proxy adds it), FailureThreshold failures
// in a row make it unready. An instance that exits is restarted with
// exponential back-off. A surplus instance is first reported not ready and
// drained through Config.Drainer (out of the proxy, then at most
// DrainTimeout for its in-flight requests), then its process group gets
// SIGTERM and, after backend.process.stopGracePeriod, SIGKILL.
//
// Instances inherit graylane's environment plus backend.process.env and
// GRAYLANE_INSTANCE={id}.{nonce}, which identifies them.
//
// # Crash safety
//
// Every instance has a record, StateDir/apps/{app}/instances/{id}.json
// (pid, port, version, slot, argv, start time), written before it counts as
// started: once with no pid before the fork and again with the pid. The
// desired replicas are kept in StateDir/apps/{app}/app.json. A new
// Backend on the same StateDir adopts every recorded process that is alive
// and whose /proc/{pid}/cmdline (and start time) match the record, instead of
// starting the slot again; a record without a pid is matched by the
// GRAYLANE_INSTANCE marker in /proc/{pid}/environ. Records of dead processes
// are removed and their slots restarted. So after graylane is killed and
// restarted no slot is ever started twice. A Backend holds an exclusive
// flock on StateDir/lock for its life (the kernel drops it if graylane dies),
// so a second Backend on the same StateDir is refused (ErrStateDirInUse).
// Adopted instances are health-checked once before New returns, so Observe
// (and the proxy following it) sees them ready at once. Close is graylane's
// shutdown: it leaves the instances running for the next Backend; StopAll
// stops them.
//
// The backend reads /proc and so runs on Linux only.
package process
