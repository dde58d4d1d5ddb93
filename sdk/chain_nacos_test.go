package sdk_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/nacosreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestChainNacos is TestChainEtcd's scenario with every service registered
// in Nacos naming and the documents published in Nacos config, against
// Polaris (a real Nacos-protocol server), with async hops.
func TestChainNacos(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	log := sdktest.Logger(t, slog.LevelWarn)
	ctx := sdktest.Ctx(t, 5*time.Minute)
	cfg := nacos.Config{Servers: []string{srv.NacosAddr()}, Timeout: 5 * time.Second, ProbeInterval: 500 * time.Millisecond}
	cfg.Logger = log
	nr, err := nacos.NewRegistry(ctx, cfg)
	sdktest.Must(t, "nacos registry", err)
	t.Cleanup(func() { _ = nr.Close() })
	reg := nacosreg.New(nr)
	rules, err := nacosreg.Rules(ctx, cfg)
	sdktest.Must(t, "nacos rules", err)
	t.Cleanup(func() { _ = rules.Close() })
	pub := cfg
	pub.Group = gray.DefaultNacosGroup
	pub.Logger = log
	store, err := nacos.New(ctx, pub)
	sdktest.Must(t, "nacos store", err)
	t.Cleanup(func() { _ = store.Close() })
	router, err := grayrouter.New(grayrouter.Config{Store: store, Centre: "nacos", Logger: log})
	sdktest.Must(t, "gray router", err)

	ch := sdktest.StartChain(t, sdktest.ChainConfig{Apps: chainApps, Versions: []string{"v1", "v2"},
		Rules: rules, Registry: reg, Async: true, Logger: log})
	chainScenario(t, ch, router, 30*time.Second, 2000, true)
}
