package adapters

import "context"

// Drainer is optional: a TrafficRouter that can take one instance out of
// traffic on its own and tell when it no longer serves any request.
// Backends that stop instances themselves (process) call it before they
// stop one, so that no request in flight is cut.
//
// Contract: Drain takes addr out of app's traffic (no new request reaches
// it once Drain has taken it out) and blocks until no request is in flight
// on it, or until ctx ends (returning ctx's error). An app or address the
// router does not route returns nil at once. Idempotent. A router that
// follows the backend's Observe puts the address back when it finds it
// ready, so the backend reports the instance not ready before it calls
// Drain, and ready again only if it keeps it.
type Drainer interface {
	Drain(ctx context.Context, app, addr string) error
}
