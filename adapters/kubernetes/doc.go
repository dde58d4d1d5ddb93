// Package kubernetes is graylane's Kubernetes backend: it runs an app as
// Deployments through client-go, and its Service router switches
// blue-green traffic.
//
// Entry point: New(Config) returns a *Backend (an adapters.Backend,
// adapters.Notifier and adapters.Forgetter); Backend.Router returns the
// Service selector router (an adapters.TrafficRouter), and
// Backend.RouterFor the router a release uses by default. RESTConfig builds
// the client configuration: in-cluster in a pod, else a kubeconfig.
//
// # Mapping the engine's replicas per version onto Deployments
//
// The engine asks for a number of instances per version; one Deployment
// holds one pod template (one version) at a time. Every pod graylane runs
// is labelled graylane.io/app, graylane.io/version and
// graylane.io/deployment, and Observe reports pods per version; see
// planDeployments for the exact rules.
//
//   - rolling: the primary Deployment (backend.kubernetes.deployment) is
//     patched to the new image and version, its strategy set to the spec's
//     maxSurge/maxUnavailable and progressDeadlineSeconds, and the
//     Deployment controller rolls it. The engine's intermediate counts
//     ({v1: 3, v2: 2}) are not written: they describe what the controller
//     does anyway, and the engine only observes the per-version pod counts
//     converge. A rollback (auto or by command) patches the previous
//     version back the same way.
//   - canary and blue-green: one Deployment per version, scaled to exactly
//     the engine's count: the primary holds one version, the others live
//     in {deployment}-{version} Deployments derived from the same pod
//     template. With no router a canary's traffic follows ready pods through
//     one Service selecting every version (the engine shrinks the stable
//     version as the canary grows); promotion scales the new Deployment up
//     and, after scaleDownDelay, the old one to zero; abort scales the
//     canary to zero. A blue-green brings the new Deployment up at full size
//     and the Service router switches the active Service's selector (see
//     ServiceRouter). An idle version Deployment (no replicas, no pods,
//     wanted by nobody) that graylane created is deleted; an idle primary
//     takes the next version.
//
// The pod template comes from backend.kubernetes.template (graylane creates
// the Deployments) or, without it, from an existing primary Deployment an
// operator handed over with the annotation graylane.io/managed-by:
// graylane (adopted in place; its selector is never changed).
//
// # Ownership and drift
//
// graylane changes only objects annotated graylane.io/managed-by: graylane
// (it sets that on what it creates) and deletes only objects it created
// (graylane.io/created). On every write it records the fields it owns in
// graylane.io/applied (replicas, image, version, strategy and deadline of a
// Deployment; the selector and split of a Service). An object whose live
// fields differ from that record was changed behind graylane's back: Observe
// puts the difference in the Meta["drift"] of the Deployment's instances
// and logs a warning once, and Apply, when graylane's own desired state for
// the object did not change, leaves it alone and returns an error wrapping
// ErrDrift (shown as the app's lastError and an ApplyFailed event). When
// graylane's desired state changes (the next step, a new version) it writes
// again, and logs that it overrides the drift. Deleting graylane.io/applied
// hands the object back at once. A Deployment's ProgressDeadlineExceeded or
// ReplicaFailure condition is reported the same way in
// Meta["deploymentProblem"] and the instances' Message.
//
// # Watching
//
// Observe reads shared informers of pods and Deployments labelled
// graylane.io/app (all namespaces, or Config.Namespaces), started on first
// use; every change of an app's pods or Deployments notifies the engine
// (adapters.Notifier), so it reconciles at once.
//
// The ClusterRole and Role graylane needs are in deployments/kubernetes.
package kubernetes
