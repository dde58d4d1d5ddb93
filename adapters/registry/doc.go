// Package registry is graylane's registry backend (backend.type
// registry): graylane deploys nothing. Instances are started by something
// else and register themselves — in etcd (sdk/etcdreg, or graylane's POST
// /api/v1/instances with heartbeats) or in Nacos naming (sdk/nacosreg) —
// and the backend observes them per version for the engine, so a canary
// step waits until the target version has registered ready instances and
// the progress deadline applies. Apply only records the desired counts
// (Desired) and never fails; the steps themselves move the published gray
// weights (adapters/grayrouter).
//
// Entry point: New(Config{Sources: ...}) returns a *Backend, an
// adapters.Backend, adapters.Notifier (registrations trigger a reconcile
// at once) and adapters.Forgetter.
//
//	b, _ := registry.New(registry.Config{Sources: map[string]registry.Source{
//		"etcd": etcdreg.New(etcdreg.Config{Client: cli}),
//	}})
package registry
