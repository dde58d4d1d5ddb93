package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/spec"
)

// addProxy wires graylane's built-in proxy: one router for every backend
// (traffic.type proxy, the default of the process backend), whose
// endpoints are the ready instances of the app's backend and whose routes
// are kept in proxy.stateDir (default {data.dir}/proxy) so a restart
// serves them again at once.
func (r *resolver) addProxy(v *viper.Viper, dataDir string, log *slog.Logger) (*proxy.Router, error) {
	dir := v.GetString("proxy.stateDir")
	if dir == "" {
		dir = filepath.Join(dataDir, "proxy")
	}
	plog := log.With("component", "proxy")
	local, err := proxy.NewLocal(proxy.LocalConfig{Logger: plog, StateFile: filepath.Join(dir, "routes.json")})
	if err != nil {
		return nil, fmt.Errorf("built-in proxy in %s: %w", dir, err)
	}
	router, err := proxy.NewRouter(proxy.RouterConfig{
		DataPlane: local, Instances: proxy.InstancesFunc(r.observeAny), Logger: plog,
		Resync: v.GetDuration("proxy.resync"),
	})
	if err != nil {
		local.Close()
		return nil, fmt.Errorf("built-in proxy: %w", err)
	}
	// closers run last first: the proxy closes after the backends, so
	// process.stopOnExit still drains through it
	r.closers = append(r.closers, func() { _ = local.Close() }, func() { _ = router.Close() })
	r.routers["proxy"] = func(rel *spec.Release) (adapters.TrafficRouter, error) {
		if rel.ProxyListen() == "" && rel.Backend.Type == spec.BackendProcess {
			return nil, nil // a process app without a proxy address has no router
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := router.Ensure(ctx, rel); err != nil {
			return nil, err
		}
		return router, nil
	}
	return router, nil
}
