package main

import (
	"context"
	"log/slog"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/nacos"
)

// nacosDocuments connects config targets on Nacos: config.nacos.servers,
// else nacos.servers (the release source's cluster). Without servers,
// Nacos targets wait at the config gate and say no Nacos is configured.
func nacosDocuments(ctx context.Context, v *viper.Viper, log *slog.Logger) (configsync.Documents, func(), error) {
	servers := list(v, "config.nacos.servers")
	if len(servers) == 0 {
		servers = list(v, "nacos.servers")
	}
	if len(servers) == 0 {
		return nil, func() {}, nil
	}
	d, err := nacos.NewDocuments(nacos.Config{
		TLS:      nacosTLS(v),
		Servers:  servers,
		GRPCPort: v.GetInt("nacos.grpcPort"),
		Username: fallback(v, "config.nacos.username", "nacos.username"),
		Password: fallback(v, "config.nacos.password", "nacos.password"),
		Timeout:  v.GetDuration("nacos.timeout"),
		Logger:   log,
	})
	if err != nil {
		return nil, func() {}, err
	}
	return d, func() { _ = d.Close() }, nil
}
