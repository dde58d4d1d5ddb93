// Package environments is the pure core of graylane's environments and
// promotion: the declared environments and their rules (Parse, Set,
// Environment), time windows (ParseWindow), release bundles (Bundle,
// BundleDigest), what graylane knows of an app in an environment (State,
// Run), promotion requests and approvals (Request, Approval), freezes,
// and the gate itself:
//
//	Evaluate(Input) Verdict
//
// Evaluate is pure: the state of the source and target environments, the
// request with its approvals, the freeze and the time go in; whether the
// bundle may enter the target now, and every rule that refuses it, come
// out. It reads no clock (Input.Now) and does no I/O, so the promotion
// controller (package promotion) can be crash-safe and its tests need no
// real soak times or windows.
//
// The package embeds the time-zone database (time/tzdata): windows name
// zones like Asia/Shanghai, and a minimal image may have no zoneinfo.
package environments
