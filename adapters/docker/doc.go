// Package docker is graylane's Docker backend (backend.type docker): an
// app's instances are containers on one or more Docker Engines, driven
// through the Engine API with the official Go client (API version
// negotiated, so Docker 20.10 and newer).
//
// Entry point: New(Config) returns a *Backend (an adapters.Backend,
// adapters.Notifier and adapters.Forgetter).
//
// Each app has one loop (app.go) that, on every pass, lists the app's
// containers on its engines by the label graylane.io/app, probes them
// (health.go), decides with the pure planner plan (plan.go: start-first or
// stop-first, spread slot n on hosts[n mod len(hosts)]) and starts workers
// that pull, create, start, drain, stop and remove (act.go). The labels
// are the record, so a restarted graylane adopts what runs; a container's
// name ({app}-{version}-{slot}) claims its slot, so no slot is ever
// created twice. Slots that keep failing carry adapters.MetaStalled with
// the engine's message (view.go). Compose services are read with
// compose-go (compose.go). See docs/backends.md.
package docker
