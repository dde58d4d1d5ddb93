package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/configsync/apollo"
)

// buildApolloSource connects to Apollo: agollo watches the release
// namespace and, when a portal and token are set, the Open API writes it.
// It does not wait for Apollo (the last-known-good cache in apollo.cacheDir,
// default <data.dir>/apollo, covers a start while Apollo is down).
func buildApolloSource(ctx context.Context, v *viper.Viper, dataDir string, log *slog.Logger) (sourceParts, error) {
	cacheDir := v.GetString("apollo.cacheDir")
	if cacheDir == "" {
		cacheDir = filepath.Join(dataDir, "apollo")
	}
	tc, err := optionalTLS(v, "apollo.tls")
	if err != nil {
		return sourceParts{}, err
	}
	cfg := apollo.Config{
		TLS:            tc,
		Meta:           v.GetString("apollo.meta"),
		ConfigService:  v.GetString("apollo.configService"),
		AppID:          v.GetString("apollo.appId"),
		Cluster:        v.GetString("apollo.cluster"),
		Namespace:      v.GetString("apollo.namespace"),
		Secret:         v.GetString("apollo.secret"),
		Label:          v.GetString("apollo.label"),
		Portal:         v.GetString("apollo.portal"),
		Env:            v.GetString("apollo.env"),
		Token:          v.GetString("apollo.token"),
		Operator:       v.GetString("apollo.operator"),
		CacheDir:       cacheDir,
		RequestTimeout: v.GetDuration("apollo.timeout"),
		ProbeInterval:  v.GetDuration("apollo.probeInterval"),
		StartupGrace:   v.GetDuration("apollo.startupGrace"),
	}
	cfg.Logger = log
	s, err := apollo.New(cfg)
	if err != nil {
		return sourceParts{}, fmt.Errorf("source.type apollo: %w", err)
	}
	parts := sourceParts{source: s, ready: s.Healthy, close: func() { _ = s.Close() }}
	if cfg.Portal != "" {
		parts.writer = s
	} else {
		log.Info("apollo.portal is not set: releases are read-only (edit them in the Apollo portal)")
	}
	return parts, nil
}
