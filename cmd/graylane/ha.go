package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/rollout/engine/shard"
)

// haParts is how this graylane shares the work with other replicas.
type haParts struct {
	mode   string // single, leader or shard
	id     string
	elect  engine.Elect
	shard  *shard.Shard
	nudges engine.Nudger
}

// engineShard is the shard as the engine takes it (nil outside shard
// mode: a nil *shard.Shard must not become a non-nil interface).
func (h haParts) engineShard() engine.Shard {
	if h.shard == nil {
		return nil
	}
	return h.shard
}

// buildHA reads ha.*: ha.mode single (the default), leader (the default
// with ha.enabled: true: one elected replica drives every app) or shard
// (every replica drives its share of the apps).
func buildHA(v *viper.Viper, cli *clientv3.Client, log *slog.Logger) (haParts, error) {
	mode := v.GetString("ha.mode")
	switch mode {
	case "":
		mode = "single"
		if v.GetBool("ha.enabled") {
			mode = "leader"
		}
	case "single", "leader", "shard":
	default:
		return haParts{}, fmt.Errorf("ha.mode: %q is not single, leader or shard", mode)
	}
	// the id the upgrade gate advertises this graylane under
	h := haParts{mode: mode, id: memberID(v)} // wiring_upgrade.go
	ttl := v.GetDuration("ha.ttl")
	if mode != "single" && ttl <= 0 {
		return haParts{}, fmt.Errorf("ha.ttl: %q is not a positive duration", v.GetString("ha.ttl"))
	}
	switch mode {
	case "leader":
		h.elect = etcdElect(cli, v.GetString("ha.key"), h.id, ttl, log.With("component", "election"))
		h.nudges = etcdstore.NewNudger(cli, "")
	case "shard":
		sh, err := shard.New(shard.Config{Client: cli, Prefix: v.GetString("ha.prefix"), ID: h.id, API: v.GetString("http.addr"),
			TTL: ttl, Logger: log.With("component", "shard")})
		if err != nil {
			return haParts{}, err
		}
		h.shard = sh
		h.nudges = etcdstore.NewNudger(cli, "")
	}
	if mode != "single" {
		log.Info("high availability", "mode", mode, "id", h.id)
	}
	return h, nil
}

// forEnv is how environment e's engine shares its apps: an environment on
// the legacy names (the only one of a graylane without environments) uses
// ha.prefix and the default nudge keys; every other environment has its
// own shard membership and nudge keys under its etcd root, so that app
// shop of test and app shop of prod are owned and nudged apart.
func (h haParts) forEnv(cli *clientv3.Client, e *environments.Environment, v *viper.Viper, log *slog.Logger) (haParts, error) {
	if e.LegacyNames || h.mode == "single" {
		return h, nil
	}
	out := h
	root := envRoot(e)
	out.nudges = etcdstore.NewNudger(cli, root+"nudge/")
	if h.mode == "shard" {
		sh, err := shard.New(shard.Config{Client: cli, Prefix: root + "shard/", ID: h.id, API: v.GetString("http.addr"),
			TTL: v.GetDuration("ha.ttl"), Logger: log.With("component", "shard", "env", e.Name)})
		if err != nil {
			return haParts{}, fmt.Errorf("environment %s: %w", e.Name, err)
		}
		out.shard = sh
	}
	return out, nil
}
