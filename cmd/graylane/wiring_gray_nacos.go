package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/adapters/registry"
	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/nacosreg"
)

// grayNacosConfig reads the nacos.* keys shared with the Nacos source.
func grayNacosConfig(v *viper.Viper) (nacos.Config, error) {
	servers := list(v, "nacos.servers")
	if len(servers) == 0 {
		return nacos.Config{}, errors.New("set nacos.servers (host:port of the Nacos HTTP API)")
	}
	return nacos.Config{
		TLS:     nacosTLS(v),
		Servers: servers, GRPCPort: v.GetInt("nacos.grpcPort"), Namespace: v.GetString("nacos.namespace"),
		Username: v.GetString("nacos.username"), Password: v.GetString("nacos.password"),
		AccessKey: v.GetString("nacos.accessKey"), SecretKey: v.GetString("nacos.secretKey"),
		Timeout: v.GetDuration("nacos.timeout"),
	}, nil
}

// nacosGrayStore publishes gray documents in Nacos: dataId = app in group
// gray.nacos.group, with the group's index kept so SDKs can list it.
func nacosGrayStore(ctx context.Context, v *viper.Viper, log *slog.Logger) (grayrouter.Store, func(), error) {
	cfg, err := grayNacosConfig(v)
	if err != nil {
		return nil, nil, err
	}
	cfg.Group = v.GetString("gray.nacos.group")
	cfg.Logger = log
	s, err := nacos.New(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nacos %v: %w", cfg.Servers, err)
	}
	return s, func() { _ = s.Close() }, nil
}

// nacosRegistrySource follows instances registered in Nacos naming.
func nacosRegistrySource(ctx context.Context, v *viper.Viper, log *slog.Logger) (registry.Source, instanceLister, func(), error) {
	cfg, err := grayNacosConfig(v)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.Logger = log
	nr, err := nacos.NewRegistry(ctx, cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to nacos naming %v: %w", cfg.Servers, err)
	}
	return nacosreg.New(nr), nacosLister{nr}, func() { _ = nr.Close() }, nil
}

type nacosLister struct{ r *nacos.Registry }

func (l nacosLister) Instances(ctx context.Context, app string) ([]gray.Instance, error) {
	ns, err := l.r.Instances(ctx, app)
	if err != nil {
		return nil, err
	}
	out := make([]gray.Instance, 0, len(ns))
	for _, n := range ns {
		out = append(out, nacosreg.FromNacos(n))
	}
	return out, nil
}
