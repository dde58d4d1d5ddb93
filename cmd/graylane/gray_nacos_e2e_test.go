package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/sdk/nacosreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestEndToEndRegistryCanaryNacos is TestEndToEndRegistryCanary with Nacos
// (Polaris) for everything gray: graylane publishes the documents in Nacos
// (gray.centre nacos) and observes instances in Nacos naming
// (registry.sources nacos), where every instance registers through the SDK.
func TestEndToEndRegistryCanaryNacos(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{
		"gray":     map[string]any{"centre": "nacos"},
		"registry": map[string]any{"sources": "nacos"},
		"nacos":    map[string]any{"servers": srv.NacosAddr()},
	}})
	ctx := sdktest.Ctx(t, 5*time.Minute)
	log := sdktest.Logger(t, slog.LevelWarn)
	cfg := nacos.Config{Servers: []string{srv.NacosAddr()}, Timeout: 5 * time.Second, ProbeInterval: 500 * time.Millisecond}
	cfg.Logger = log
	nr, err := nacos.NewRegistry(ctx, cfg)
	sdktest.Must(t, "nacos registry", err)
	t.Cleanup(func() { _ = nr.Close() })
	reg := nacosreg.New(nr)
	rules, err := nacosreg.Rules(ctx, cfg)
	sdktest.Must(t, "nacos rules", err)
	t.Cleanup(func() { _ = rules.Close() })
	registryCanary(t, ctx, g, reg, reg, reg, rules, log)
}
