package sdk_test

import (
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/nacosreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkRuleChangeNacos is BenchmarkRuleChangeEtcd with Nacos
// (Polaris) as the centre: registration in Nacos naming, documents in
// Nacos config.
func BenchmarkRuleChangeNacos(b *testing.B) {
	testenv.IntegrationTest(b)
	srv := polaris.Start(b)
	ctx := sdktest.Ctx(b, 10*time.Minute)
	cfg := nacos.Config{Servers: []string{srv.NacosAddr()}, Timeout: 5 * time.Second, ProbeInterval: 500 * time.Millisecond}
	nr, err := nacos.NewRegistry(ctx, cfg)
	sdktest.Must(b, "nacos registry", err)
	b.Cleanup(func() { _ = nr.Close() })
	rules, err := nacosreg.Rules(ctx, cfg)
	sdktest.Must(b, "rules", err)
	b.Cleanup(func() { _ = rules.Close() })
	pub := cfg
	pub.Group = gray.DefaultNacosGroup
	store, err := nacos.New(ctx, pub)
	sdktest.Must(b, "store", err)
	b.Cleanup(func() { _ = store.Close() })
	benchRuleChange(b, rules, nacosreg.New(nr), store)
}
