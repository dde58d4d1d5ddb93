// Package etcdreg registers instances in etcd and follows them, and reads
// published gray documents from etcd, for graylane's SDK (package sdk) and
// its registry backend (adapters/registry).
//
// Layout: an instance is the key /graylane/instances/{app}/{version}/{id}
// holding its gray.Instance as JSON, bound to an etcd lease; gray
// documents are the keys /graylane/gray/{app}.
//
// Entry points: New(Config) returns a *Registry, which is an
// sdk.Registrar (Register keeps a lease alive), an sdk.Discovery (Watch),
// and offers Put/Heartbeat/Delete for registrations renewed from outside
// (graylane's POST /api/v1/instances). Rules(client, prefix) returns the
// document source for sdk.Config.Rules.
//
//	reg := etcdreg.New(etcdreg.Config{Client: cli})
//	c, err := sdk.Start(ctx, sdk.Config{App: "shop", Version: "v2", Addr: addr,
//		Rules: etcdreg.Rules(cli, ""), Registrar: reg, Discovery: reg,
//		Services: []string{"stock"}})
package etcdreg
