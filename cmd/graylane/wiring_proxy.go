package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/adapters/proxy/proxyd"
	"github.com/graylane/graylane/spec"
)

// addProxy wires graylane's built-in proxy: one router for every backend
// (traffic.type proxy, the default of the process backend), whose
// endpoints are the ready instances of the app's backend. The proxies run
// in `graylane proxy`, a process of their own (proxy.mode process, the
// default) that keeps serving while graylane is down and is adopted by
// the next graylane, or inside graylane (proxy.mode embedded). Either way
// their routes are kept in proxy.stateDir (default {data.dir}/proxy).
func (r *resolver) addProxy(v *viper.Viper, dataDir string, log *slog.Logger) (*proxy.Router, error) {
	dir := v.GetString("proxy.stateDir")
	if dir == "" {
		dir = filepath.Join(dataDir, "proxy")
	}
	plog := log.With("component", "proxy")
	var dp proxy.DataPlane
	switch mode := v.GetString("proxy.mode"); mode {
	case "", "process":
		// The data plane outlives graylane: `graylane proxy` in its own
		// session, adopted after a restart, serving its last routes while
		// graylane is down.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var args []string
		if n := v.GetInt("proxy.procs"); n > 0 {
			args = append(args, "--procs", strconv.Itoa(n))
		}
		if v.IsSet("proxy.gcBudgetMiB") {
			n := v.GetInt("proxy.gcBudgetMiB")
			if n < 0 {
				cancel()
				return nil, fmt.Errorf("proxy.gcBudgetMiB: %d is negative (MiB, 0 for no budget)", n)
			}
			args = append(args, "--gc-budget-mib", strconv.Itoa(n))
		}
		sup, err := proxyd.Supervise(ctx, proxyd.SupervisorConfig{Dir: dir, Args: args, Logger: plog})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("built-in proxy in %s: %w", dir, err)
		}
		dp = sup.Client()
		r.closers = append(r.closers, func() {
			if !v.GetBool("process.stopOnExit") {
				_ = sup.Close() // the proxy keeps serving; the next graylane adopts it
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := sup.Stop(ctx); err != nil {
				plog.Warn("stopping the proxy process", "err", err)
			}
		})
	case "embedded":
		local, err := proxy.NewLocal(proxy.LocalConfig{Logger: plog, StateFile: filepath.Join(dir, proxyd.RoutesName)})
		if err != nil {
			return nil, fmt.Errorf("built-in proxy in %s: %w", dir, err)
		}
		dp = local
		r.closers = append(r.closers, func() { _ = local.Close() })
	default:
		return nil, fmt.Errorf("proxy.mode: %q is not a mode (process or embedded)", mode)
	}
	router, err := proxy.NewRouter(proxy.RouterConfig{
		DataPlane: dp, Instances: proxy.InstancesFunc(r.observeAny), Logger: plog,
		Resync: v.GetDuration("proxy.resync"),
	})
	if err != nil {
		return nil, fmt.Errorf("built-in proxy: %w", err)
	}
	// closers run last first: the proxy closes after the backends, so
	// process.stopOnExit still drains through it
	r.closers = append(r.closers, func() { _ = router.Close() })
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
