package sdk_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/apollorules"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

const apolloToken = "sdk-test-token"

// apolloGray starts the test Apollo with graylane's gray namespace set up
// as an operator would (app, properties namespace, a token granted on the
// app, a first release), and returns the SDK's rules source and the store
// graylane publishes through (the Open API).
func apolloGray(t testing.TB, log *slog.Logger) (*apollo.Source, grayrouter.Store) {
	t.Helper()
	srv := apolloserver.New(apolloserver.Options{})
	sdktest.Must(t, "start apollo", srv.Start())
	t.Cleanup(srv.Close)
	sdktest.Must(t, "create app", srv.CreateApp(apollo.DefaultAppID, ""))
	_, err := srv.CreateNamespace(apollo.DefaultAppID, gray.DefaultApolloNamespace, apolloserver.FormatProperties)
	sdktest.Must(t, "create namespace", err)
	sdktest.Must(t, "create token", srv.CreateToken(apolloToken))
	sdktest.Must(t, "grant", srv.GrantApp(apolloToken, apollo.DefaultAppID))
	// agollo backs off ~30 s on a namespace that was never released
	_, err = srv.Publish(apollo.DefaultAppID, apollo.DefaultCluster, gray.DefaultApolloNamespace, "init")
	sdktest.Must(t, "first release", err)

	rules, err := apollorules.Rules(apollo.Config{ConfigService: srv.URL(), ProbeInterval: 500 * time.Millisecond, Logger: log})
	sdktest.Must(t, "apollo rules", err)
	t.Cleanup(func() { _ = rules.Close() })
	docs, err := apollo.NewDocuments(apollo.DocumentsConfig{Portal: srv.PortalURL(), Token: apolloToken, ConfigService: srv.URL(), Logger: log})
	sdktest.Must(t, "apollo documents", err)
	store := grayrouter.DocumentsStore(docs, func(app string) configsync.Location {
		return configsync.Location{AppID: apollo.DefaultAppID, Cluster: apollo.DefaultCluster, Namespace: gray.DefaultApolloNamespace, Key: app}
	})
	return rules, store
}

// TestChainApollo is TestChainEtcd's scenario with the documents published
// in Apollo (the Open API, one release per change) and read by the SDK
// through agollo; instances register in etcd, as Apollo has no registry.
func TestChainApollo(t *testing.T) {
	testenv.IntegrationTest(t)
	log := sdktest.Logger(t, slog.LevelWarn)
	cli := etcdtest.Start(t).Client()
	reg := etcdreg.New(etcdreg.Config{Client: cli, Logger: log})
	rules, store := apolloGray(t, log)
	router, err := grayrouter.New(grayrouter.Config{Store: store, Centre: "apollo", Logger: log})
	sdktest.Must(t, "gray router", err)

	ch := sdktest.StartChain(t, sdktest.ChainConfig{Apps: chainApps, Versions: []string{"v1", "v2"},
		Rules: rules, Registry: reg, Async: true, Logger: log})
	chainScenario(t, ch, router, 30*time.Second, 2000, true)
}

// BenchmarkRuleChangeApollo is BenchmarkRuleChangeEtcd with Apollo as the
// centre of the documents (registration in etcd).
func BenchmarkRuleChangeApollo(b *testing.B) {
	testenv.IntegrationTest(b)
	cli := etcdtest.Start(b).Client()
	rules, store := apolloGray(b, slog.New(slog.DiscardHandler))
	benchRuleChange(b, rules, etcdreg.New(etcdreg.Config{Client: cli}), store)
}
