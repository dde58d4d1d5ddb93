package nacos_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestConformance runs the shared configsync conformance suite against the
// Nacos source and a real Nacos-protocol server (Polaris), one fresh server
// per case. The source reaches the server through two TCP proxies (HTTP and
// gRPC) so that the Cut case can cut it off while the operator's console
// client still gets through.
func TestConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
		srv := polaris.Start(t)
		httpProxy := sourcetest.NewProxy(t, srv.NacosAddr())
		grpcProxy := sourcetest.NewProxy(t, net.JoinHostPort(srv.Host(), strconv.Itoa(srv.GRPCPort())))
		_, grpcPort, err := net.SplitHostPort(grpcProxy.Addr())
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(srv, group)
		cfg.Servers = []string{httpProxy.Addr()}
		cfg.GRPCPort, _ = strconv.Atoi(grpcPort)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfg.Logger = testLogger(t)
		s, err := nacos.New(ctx, cfg)
		if err != nil {
			t.Fatalf("nacos.New: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		op := &operator{srv: srv, group: group, index: s.IndexDataID()}
		return &sourcetest.Harness{
			Source:  s,
			Writer:  s,
			Publish: op.publish,
			Remove: func(t testing.TB, app string) {
				srv.DeleteConfig(t, group, app)
			},
			Fetch:   op.fetch,
			Restart: func(t testing.TB) { srv.Restart() },
			Cut: func(t testing.TB) func() {
				restoreHTTP := httpProxy.Cut()
				restoreGRPC := grpcProxy.Cut()
				return func() { restoreHTTP(); restoreGRPC() }
			},
			CutReported: true,
			// Polaris delivers a change ~1 s after the write, the first one
			// after a new listener up to ~5 s: 3 s without an event is
			// "nothing is coming" for changes to followed apps.
			Settle: 3 * time.Second,
		}
	})
}

// operator does what docs/nacos.md tells an operator to do in the Nacos
// console to publish a release: publish the app's dataId, and list the app
// in the index document if it is not there yet.
type operator struct {
	srv   *polaris.Server
	group string
	index string

	mu     sync.Mutex
	listed []string // apps this operator put in the index
}

func (o *operator) publish(t testing.TB, app string, data []byte) {
	t.Helper()
	o.srv.PublishConfig(t, o.group, app, string(data))
	o.mu.Lock()
	defer o.mu.Unlock()
	if slices.Contains(o.listed, app) {
		return
	}
	// Reads lag writes by ~1 s, so merge what the server shows with what
	// this operator wrote before.
	var ix struct {
		Apps []string `json:"apps"`
	}
	if raw, ok := o.srv.GetConfig(t, o.group, o.index); ok {
		if err := yaml.Unmarshal([]byte(raw), &ix); err != nil {
			t.Fatalf("operator: index %q: %v", raw, err)
		}
	}
	apps := append(append(ix.Apps, o.listed...), app)
	slices.Sort(apps)
	apps = slices.Compact(apps)
	out, err := yaml.Marshal(map[string][]string{"apps": apps})
	if err != nil {
		t.Fatal(err)
	}
	o.srv.PublishConfig(t, o.group, o.index, string(out))
	o.listed = append(o.listed, app)
}

// fetch reads app's document as the console shows it once Polaris' read
// cache (refreshed every second) has caught up with the latest write: it
// reads for 1.5 s, and on until the document is there (at most 10 s: the
// cache lags further on a loaded machine), and returns the last answer.
func (o *operator) fetch(t testing.TB, app string) ([]byte, bool) {
	t.Helper()
	var data string
	var ok bool
	start := time.Now()
	for {
		data, ok = o.srv.GetConfig(t, o.group, app)
		waited := time.Since(start)
		if (ok && waited >= 1500*time.Millisecond) || waited >= 10*time.Second {
			return []byte(data), ok
		}
		time.Sleep(100 * time.Millisecond)
	}
}
