package apollo

import (
	"net/url"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestConformance runs the shared Source suite against the Source talking to
// the protocol-faithful test Apollo. Every case gets its own server (agollo
// keeps global state per server URL) and runs in parallel with the others.
// The Source reaches the config service through a proxy the Cut case can
// cut; publishing goes through the server's admin API, as the portal does.
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
		t.Parallel()
		srv := newServer(t, apolloserver.Options{})
		setupNamespace(t, srv)
		u, err := url.Parse(srv.URL())
		must(t, err)
		proxy := sourcetest.NewProxy(t, u.Host)
		cfg := testConfig(t, srv)
		cfg.ConfigService = "http://" + proxy.Addr() + "/"
		src := newSource(t, cfg)
		return &sourcetest.Harness{
			Source:  src,
			Writer:  src,
			Publish: func(t testing.TB, app string, data []byte) { publishDoc(t, srv, app, data) },
			Remove:  func(t testing.TB, app string) { removeDoc(t, srv, app) },
			Fetch: func(t testing.TB, app string) ([]byte, bool) {
				v, ok := released(srv, app)
				return []byte(v), ok
			},
			Restart: func(t testing.TB) {
				srv.Stop()
				must(t, srv.Start())
			},
			Cut:         func(t testing.TB) func() { return proxy.Cut() },
			CutReported: true,
			// agollo waits 2 s between polls; after a failure it leaves the
			// server alone for ~30 s.
			Settle:     5 * time.Second,
			Eventually: recoverWithin,
		}
	})
}
