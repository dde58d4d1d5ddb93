// Package nacosreg registers instances in Nacos naming and follows them,
// and reads published gray documents from Nacos, for graylane's SDK
// (package sdk) and its registry backend (adapters/registry). It builds on
// configsync/nacos (the Registry and Source there handle nacos-sdk-go's
// reconnection problems).
//
// Nacos layout: service name = app, group DEFAULT_GROUP, ephemeral
// instances with the Nepxion metadata keys version, region, zone, env,
// group, plus graylane.id; gray documents in config group GRAYLANE_GRAY,
// dataId = app.
//
// Entry points: New(*nacos.Registry) returns a *Registry (sdk.Registrar
// and sdk.Discovery); Rules(ctx, nacos.Config) returns the document source
// for sdk.Config.Rules.
//
//	nr, _ := nacos.NewRegistry(ctx, nacos.Config{Servers: []string{"nacos:8848"}})
//	rules, _ := nacosreg.Rules(ctx, nacos.Config{Servers: []string{"nacos:8848"}})
//	reg := nacosreg.New(nr)
//	c, err := sdk.Start(ctx, sdk.Config{App: "shop", Version: "v2", Addr: addr,
//		Rules: rules, Registrar: reg, Discovery: reg, Services: []string{"stock"}})
package nacosreg
