package grayrouter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/configsync"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

var apps atomic.Int64

func release(app, version string) *spec.Release {
	rel, err := spec.Parse([]byte(fmt.Sprintf("app: %s\nversion: %s\nbackend: {type: registry}\ntraffic: {type: gray}\n", app, version)))
	if err != nil {
		panic(err)
	}
	return rel
}

// serve starts an HTTP server answering its version and registers it.
func serve(t *testing.T, reg *etcdreg.Registry, app, version string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	sdktest.Must(t, "listen", err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, version)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, err = reg.Register(ctx, gray.Instance{App: app, Version: version, ID: version + "-" + ln.Addr().String(), Addr: ln.Addr().String(), Ready: true})
	sdktest.Must(t, "register", err)
}

func newRouter(t testing.TB, cli *clientv3.Client) (*grayrouter.Router, *etcdsource.Source) {
	store := etcdsource.New(etcdsource.Config{Client: cli, Prefix: gray.DefaultRulesPrefix})
	t.Cleanup(func() { _ = store.Close() })
	r, err := grayrouter.New(grayrouter.Config{Store: store, Centre: "etcd", Logger: sdktest.Logger(t, slog.LevelWarn)})
	sdktest.Must(t, "router", err)
	return r, store
}

// TestConformance: the gray router passes the TrafficRouter contract. The
// traffic goes through graylane's SDK (an edge client following the
// published document from etcd) to real HTTP servers registered in etcd.
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	reg := etcdreg.New(etcdreg.Config{Client: cli})
	rules := etcdreg.Rules(cli, "")
	t.Cleanup(func() { _ = rules.Close() })
	adaptertest.RunRouter(t, func(t *testing.T) *adaptertest.RouterHarness {
		router, _ := newRouter(t, cli)
		app := fmt.Sprintf("conf-%d", apps.Add(1))
		serve(t, reg, app, "v1")
		serve(t, reg, app, "v2")
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		c, err := sdk.Start(ctx, sdk.Config{App: "probe", Version: "v0", Rules: rules, Discovery: reg, Services: []string{app}})
		sdktest.Must(t, "sdk client", err)
		t.Cleanup(func() { _ = c.Close() })
		sdktest.Must(t, "client ready", c.Ready(sdktest.Ctx(t, 30*time.Second)))
		testenv.Eventually(t, 10*time.Second, "both instances visible", func() error {
			return testenv.Check(len(c.Instances(app)) == 2, "%v", c.Instances(app))
		})
		httpc := &http.Client{Transport: c.Transport(nil), Timeout: 5 * time.Second}
		return &adaptertest.RouterHarness{
			Router:   router,
			Release:  func(v string) *spec.Release { return release(app, v) },
			Versions: []string{"v1", "v2"},
			Unready:  "v3",
			Probe: func(ctx context.Context, h http.Header) (string, error) {
				// a client acts on the document once it has it
				want := int64(0)
				if d, err := router.Document(ctx, app); err == nil {
					want = d.Generation
				} else if !errors.Is(err, configsync.ErrNotFound) {
					return "", err
				}
				for c.Router().Generation(app) < want {
					select {
					case <-ctx.Done():
						return "", ctx.Err()
					case <-c.Router().Changed():
					case <-time.After(20 * time.Millisecond):
					}
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+app+"/", nil)
				req.Header = h.Clone()
				if req.Header == nil {
					req.Header = http.Header{}
				}
				resp, err := httpc.Do(req)
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return string(b), err
			},
		}
	})
}
