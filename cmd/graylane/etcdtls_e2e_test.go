package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"gopkg.in/yaml.v3"

	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/testsupport/tlstest"
)

// tlsEtcd is an etcd member that serves clients over TLS only and demands a
// client certificate signed by ca (etcd's --client-cert-auth).
// It is started with etcd's embed package directly, not etcdtest.Start:
// graylane's embedded etcd (internal/etcdserver) listens on loopback
// without TLS by design, and this stands in for an external cluster.
type tlsEtcd struct {
	ca       *tlstest.CA
	endpoint string // https://127.0.0.1:PORT
	client   tlstest.Pair
}

func startTLSEtcd(t *testing.T) *tlsEtcd {
	t.Helper()
	ca := tlstest.NewCA(t)
	srv := ca.Server(t, "etcd-server")
	cfg := embed.NewConfig()
	cfg.Name = "tls"
	cfg.Dir = t.TempDir()
	cfg.UnsafeNoFsync = true
	cu, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t)))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = srv.CertFile, srv.KeyFile
	cfg.ClientTLSInfo.TrustedCAFile = ca.CertFile
	cfg.ClientTLSInfo.ClientCertAuth = true
	cfg.LogLevel = "error"
	cfg.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd with TLS: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd with TLS not ready after 30s")
	}
	return &tlsEtcd{ca: ca, endpoint: cu.String(), client: ca.Client(t, "graylane")}
}

// kv is a client of the TLS etcd authenticated with the client certificate.
func (e *tlsEtcd) kv(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.endpoint},
		DialTimeout: 5 * time.Second,
		TLS:         &tls.Config{RootCAs: e.ca.Pool, Certificates: []tls.Certificate{e.client.TLS(t)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (e *tlsEtcd) config() map[string]any {
	return map[string]any{"etcd": map[string]any{
		"endpoints":   e.endpoint,
		"dialTimeout": "3s",
		"tls":         map[string]any{"certFile": e.client.CertFile, "keyFile": e.client.KeyFile, "caFile": e.ca.CertFile},
	}}
}

// TestEndToEndEtcdTLS runs the graylane binary against an external etcd
// that serves only TLS and requires client certificates (etcd.tls.*): a
// release written straight into that etcd rolls out on the process backend,
// an API write goes back through it, and graylane's state lands in it.
func TestEndToEndEtcdTLS(t *testing.T) {
	testenv.IntegrationTest(t)
	e := startTLSEtcd(t)
	cli := e.kv(t)
	g := graylanetest.Start(t, graylanetest.Options{Config: e.config()})
	proxy := testenv.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.Put(ctx, "/graylane/apps/tlsdemo", releaseDoc("tlsdemo", "v1", proxy, rollingSteps)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "tlsdemo", 60*time.Second, "v1 healthy", healthyAt("v1"))
	if err := g.Client().SetVersion(ctx, "tlsdemo", "v2"); err != nil {
		t.Fatalf("set-version through the API (a write to the TLS etcd): %v", err)
	}
	waitFor(t, g, "tlsdemo", 60*time.Second, "v2 healthy", healthyAt("v2"))
	doc, err := cli.Get(ctx, "/graylane/apps/tlsdemo")
	if err != nil || len(doc.Kvs) != 1 || !strings.Contains(string(doc.Kvs[0].Value), "version: v2") {
		t.Fatalf("the spec in the TLS etcd after set-version: %v %v", err, doc)
	}
	state, err := cli.Get(ctx, "/graylane/state/tlsdemo")
	if err != nil || len(state.Kvs) != 1 || !strings.Contains(string(state.Kvs[0].Value), `"stableVersion":"v2"`) {
		t.Fatalf("graylane's state in the TLS etcd: %v %v", err, state)
	}
}

// TestEtcdTLSRefusals starts `graylane serve` with broken etcd.tls settings:
// each must fail fast with the key at fault named, and never serve.
func TestEtcdTLSRefusals(t *testing.T) {
	testenv.IntegrationTest(t)
	e := startTLSEtcd(t)
	bin := filepath.Join(graylanetest.Binaries(t), "graylane")
	other := tlstest.NewCA(t)
	cases := []struct {
		name string
		etcd map[string]any
		want string
	}{
		{"cert without key", map[string]any{"endpoints": e.endpoint, "tls": map[string]any{"certFile": e.client.CertFile, "caFile": e.ca.CertFile}}, "etcd.tls.keyFile"},
		{"missing CA file", map[string]any{"endpoints": e.endpoint, "tls": map[string]any{"certFile": e.client.CertFile, "keyFile": e.client.KeyFile, "caFile": "/nonexistent/ca.crt"}}, "etcd.tls.caFile"},
		{"plain http endpoint", map[string]any{"endpoints": strings.Replace(e.endpoint, "https://", "http://", 1), "tls": map[string]any{"caFile": e.ca.CertFile}}, "etcd.endpoints"},
		{"tls for the embedded etcd", map[string]any{"tls": map[string]any{"caFile": e.ca.CertFile}}, "etcd.tls"},
		// etcd rejects a client without a certificate, and graylane does
		// not trust a server signed by another CA: both fail at the dial
		{"no client certificate", map[string]any{"endpoints": e.endpoint, "dialTimeout": "2s", "tls": map[string]any{"caFile": e.ca.CertFile}}, "etcd.tls: TLS with etcd failed"},
		{"wrong CA", map[string]any{"endpoints": e.endpoint, "dialTimeout": "2s", "tls": map[string]any{"certFile": e.client.CertFile, "keyFile": e.client.KeyFile, "caFile": other.CertFile}}, "etcd.tls: TLS with etcd failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := map[string]any{
				"http": map[string]any{"addr": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))},
				"data": map[string]any{"dir": filepath.Join(dir, "data")},
				"etcd": c.etcd,
			}
			b, _ := yaml.Marshal(cfg)
			file := filepath.Join(dir, "graylane.yaml")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "serve", "--config", file).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("graylane kept running with %s:\n%s", c.name, out)
			}
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Fatalf("graylane serve: err %v, want an error naming %q; output:\n%s", err, c.want, out)
			}
			if strings.Contains(string(out), "graylane serving") {
				t.Fatalf("graylane served with %s:\n%s", c.name, out)
			}
		})
	}
}
