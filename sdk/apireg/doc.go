// Package apireg registers instances through graylane's HTTP API (POST
// /api/v1/instances, then heartbeats), for services that do not talk to
// etcd or Nacos themselves. graylane keeps the registration in its etcd
// under a lease of the requested TTL; a missed heartbeat window expires it.
//
// Entry point: New(Config) returns a *Registrar, an sdk.Registrar.
//
//	reg := apireg.New(apireg.Config{Server: "http://graylane:8080", TTL: 15 * time.Second})
//	c, err := sdk.Start(ctx, sdk.Config{..., Registrar: reg})
package apireg
