package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
)

// upgradeDefaults are the configuration keys of rolling upgrades (README:
// configuration reference, docs/upgrades.md).
var upgradeDefaults = map[string]any{
	"upgrade.prefix":    upgrade.DefaultPrefix, // member records, storage versions, the migration mutex
	"upgrade.migration": "auto",                // auto | hold: raise schema versions once every member reads them
}

// memberID is this graylane's name: ha.id, or host-pid.
func memberID(v *viper.Viper) string {
	if id := v.GetString("ha.id"); id != "" {
		return id
	}
	return defaultID()
}

// collections lists where every record kind graylane keeps in etcd lives,
// from the configured prefixes.
func collections(v *viper.Viper) []upgrade.Collection {
	out := []upgrade.Collection{
		etcdstore.Collection(v.GetString("etcd.statePrefix")),
		etcdstore.JournalCollection(v.GetString("etcd.analysisPrefix")),
	}
	out = append(out, configrelease.Collections(getOr(v, "config.prefix", configrelease.DefaultPrefix))...)
	out = append(out, records.Collections(getOr(v, "records.prefix", records.DefaultPrefix))...)
	return append(out, audit.Collection(getOr(v, "audit.prefix", audit.DefaultPrefix)))
}

// electionPrefix is where HA candidates hold their keys (the presence of
// graylanes released before member records).
func electionPrefix(v *viper.Viper) string {
	return strings.TrimSuffix(v.GetString("ha.key"), "/") + "/"
}

// startUpgradeGate advertises this graylane and loads the storage
// versions; it fails (exit code 2) when etcd holds records of a newer
// graylane.
func startUpgradeGate(ctx context.Context, v *viper.Viper, cli *clientv3.Client, log *slog.Logger) (*upgrade.Gate, error) {
	for k, d := range upgradeDefaults {
		v.SetDefault(k, d)
	}
	hold := false
	switch m := v.GetString("upgrade.migration"); m {
	case "auto", "":
	case "hold":
		hold = true
	default:
		return nil, &exitError{code: 2, err: fmt.Errorf("upgrade.migration: %q is not auto or hold", m)}
	}
	g, err := upgrade.New(upgrade.Config{
		Client: cli, Prefix: v.GetString("upgrade.prefix"), ID: memberID(v), Release: buildVersion(),
		Collections: collections(v), Presence: []string{electionPrefix(v)},
		TTL: v.GetDuration("ha.ttl"), Hold: hold, Logger: log,
	})
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	if err := g.Start(ctx); err != nil {
		if errors.Is(err, schema.ErrNewer) {
			return nil, &exitError{code: 2, err: err}
		}
		return nil, err
	}
	return g, nil
}
