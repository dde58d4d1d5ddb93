package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/internal/upgrade"
)

// configDefaults are the configuration keys of config-in-step (README:
// configuration reference, docs/config.md). The centres' connection keys
// fall back to the release source's (apollo.*, nacos.*), so one Apollo or
// Nacos serves both unless told otherwise.
var configDefaults = map[string]any{
	"config.prefix":               configrelease.DefaultPrefix, // graylane's etcd: history and state
	"config.driftInterval":        "3s",                        // how often placed config is read back for drift
	"config.readBackTimeout":      "5s",                        // how long a write may take to read back
	"config.probeTimeout":         "1s",                        // one instance report request
	"config.apollo.portal":        "",                          // default apollo.portal
	"config.apollo.token":         "",                          // default apollo.token
	"config.apollo.env":           "",                          // default apollo.env
	"config.apollo.operator":      "",                          // default apollo.operator
	"config.apollo.configService": "",                          // default apollo.configService, then apollo.meta
	"config.nacos.servers":        "",                          // default nacos.servers
	"config.nacos.username":       "",                          // default nacos.username
	"config.nacos.password":       "",                          // default nacos.password
	"config.nacos.namespace":      "",                          // targets naming no namespace: "" public; an environment on Nacos: its namespace
}

// configWiring is the config-in-step machinery: a configrelease.Manager
// over graylane's etcd and the Nacos and Apollo graylane can reach.
type configWiring struct {
	manager *configrelease.Manager
	closers []func()
}

func (w *configWiring) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

// fallback returns the first non-empty key's value.
func fallback(v *viper.Viper, keys ...string) string {
	for _, k := range keys {
		if s := v.GetString(k); s != "" {
			return s
		}
	}
	return ""
}

// buildConfigReleaser connects the centres config targets may name: etcd
// (graylane's own cluster) always; Apollo when a portal, token and config
// service are configured; Nacos when servers are. A target on a centre
// that is not configured waits at the config gate and says so.
//
// protect names, per app, the config identities kept release revisions
// are bound to: the history keeps them for a rollback to any revision.
func buildConfigReleaser(ctx context.Context, v *viper.Viper, cli *clientv3.Client, gate *upgrade.Gate, clk clock.Clock, log *slog.Logger,
	protect func(ctx context.Context, app string) (map[string]bool, error)) (*configWiring, error) {
	for k, d := range configDefaults {
		v.SetDefault(k, d)
	}
	log = log.With("component", "config")
	w := &configWiring{}
	centres := []configsync.Documents{etcdsource.NewDocuments(cli)}
	names := []string{"etcd"}

	if portal := fallback(v, "config.apollo.portal", "apollo.portal"); portal != "" {
		tc, err := optionalTLS(v, "apollo.tls")
		if err != nil {
			return nil, err
		}
		d, err := apollo.NewDocuments(apollo.DocumentsConfig{
			TLS:           tc,
			Portal:        portal,
			Token:         fallback(v, "config.apollo.token", "apollo.token"),
			Env:           fallback(v, "config.apollo.env", "apollo.env"),
			Operator:      fallback(v, "config.apollo.operator", "apollo.operator"),
			ConfigService: fallback(v, "config.apollo.configService", "apollo.configService", "apollo.meta"),
			Logger:        log,
		})
		if err != nil {
			return nil, fmt.Errorf("config targets on apollo: %w", err)
		}
		centres = append(centres, d)
		names = append(names, "apollo")
	}
	nd, closeNacos, err := nacosDocuments(ctx, v, log)
	if err != nil {
		return nil, fmt.Errorf("config targets on nacos: %w", err)
	}
	if nd != nil {
		centres = append(centres, nd)
		names = append(names, "nacos")
		w.closers = append(w.closers, closeNacos)
	}
	m, err := configrelease.New(configrelease.Config{
		Store: configrelease.OpenEtcdStore(configrelease.EtcdStoreConfig{Client: cli, Prefix: v.GetString("config.prefix"),
			Protect: protect, Gate: gate}),
		Centres:         centres,
		Logger:          log,
		DriftInterval:   v.GetDuration("config.driftInterval"),
		ReadBackTimeout: v.GetDuration("config.readBackTimeout"),
		ProbeTimeout:    v.GetDuration("config.probeTimeout"),
		Clock:           clk,
	})
	if err != nil {
		w.close()
		return nil, err
	}
	w.manager = m
	log.Info("config-in-step ready", "centres", names)
	return w, nil
}
