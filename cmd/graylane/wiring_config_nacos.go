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
	if ns := v.GetString("config.nacos.namespace"); ns != "" {
		return namespaced{d: d, ns: ns}, func() { _ = d.Close() }, nil
	}
	return d, func() { _ = d.Close() }, nil
}

// namespaced gives config targets on Nacos that name no namespace the
// environment's (config.nacos.namespace).
type namespaced struct {
	d  *nacos.Documents
	ns string
}

var (
	_ configsync.Documents  = namespaced{}
	_ configsync.ReadBacker = namespaced{}
)

func (n namespaced) loc(l configsync.Location) configsync.Location {
	if l.Namespace == "" {
		l.Namespace = n.ns
	}
	return l
}

func (n namespaced) Centre() string { return n.d.Centre() }
func (n namespaced) Read(ctx context.Context, l configsync.Location) (configsync.Doc, error) {
	return n.d.Read(ctx, n.loc(l))
}
func (n namespaced) ReadBack(ctx context.Context, l configsync.Location) (configsync.Doc, error) {
	return n.d.ReadBack(ctx, n.loc(l))
}
func (n namespaced) Write(ctx context.Context, l configsync.Location, data []byte, expect string) (configsync.Doc, error) {
	return n.d.Write(ctx, n.loc(l), data, expect)
}
func (n namespaced) Delete(ctx context.Context, l configsync.Location, expect string) error {
	return n.d.Delete(ctx, n.loc(l), expect)
}
