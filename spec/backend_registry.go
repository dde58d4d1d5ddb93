package spec

// RegistryBackend configures the registry backend (backend.type registry):
// graylane deploys nothing. Instances are started by something else (a
// deploy system, a Kubernetes Deployment, a human) and register themselves
// — in etcd under /graylane/instances/{app}/{version}/{id}, in Nacos naming
// with metadata version=..., or with POST /api/v1/instances — and the
// backend observes them per version. Apply only records the desired
// instance counts (shown in the app's status) and never fails; a canary
// step moves the published gray rules and weights instead of starting
// processes (pair it with traffic.type gray, the default for this backend).
//
// Set replicas to the number of instances you expect per version: a
// canary weight only moves once the canary version has registered
// ceil(replicas*weight/100) ready instances, and promotion waits for
// replicas ready instances of it. The progress deadline applies while
// waiting. The section has no fields: `registry: {}` or no section at all.
type RegistryBackend struct{}

func (b *RegistryBackend) validate(path string, e *errs) {}
