package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/testsupport/tlstest"
)

// tlsFront terminates TLS (certificate from ca, ALPN protos) on a free
// loopback port and relays the bytes to backend, as a TLS load balancer in
// front of a plaintext Nacos would. It counts completed handshakes.
type tlsFront struct {
	addr       string
	handshakes atomic.Int64 // completed
	failed     atomic.Int64 // refused by the client (or broken)
}

func startTLSFront(t *testing.T, ca *tlstest.CA, backend string, protos ...string) *tlsFront {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "nacos").TLS(t)}, NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					f.failed.Add(1)
					return
				}
				f.handshakes.Add(1)
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				mu.Lock()
				conns = append(conns, c, b)
				mu.Unlock()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
				<-done
			})
		}
	})
	return f
}

// TestEndToEndNacosOverTLS: Nacos (Polaris) behind TLS on both its HTTP
// and gRPC ports, trusted through nacos.tls.caFile. A release written
// through graylane's API (a gRPC write over TLS) rolls out, and a console
// publish reaches graylane through the TLS watch.
func TestEndToEndNacosOverTLS(t *testing.T) {
	testenv.IntegrationTest(t)
	pol := polaris.Start(t)
	ca := tlstest.NewCA(t)
	httpFront := startTLSFront(t, ca, pol.NacosAddr(), "http/1.1")
	grpcFront := startTLSFront(t, ca, net.JoinHostPort(pol.Host(), strconv.Itoa(pol.GRPCPort())), "h2")
	_, grpcPort, _ := net.SplitHostPort(grpcFront.addr)
	const group = "GRAYLANE_RELEASES"
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{
		"source": map[string]any{"type": "nacos"},
		"nacos": map[string]any{"servers": []string{httpFront.addr}, "grpcPort": grpcPort, "group": group,
			"tls": map[string]any{"caFile": ca.CertFile}},
	}})
	proxy := testenv.FreePort(t)
	ctx := context.Background()
	if err := g.Client().PutSpec(ctx, "shop", []byte(releaseDoc("shop", "v1", proxy, rollingSteps))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "shop", 60*time.Second, "v1 healthy from Nacos over TLS", healthyAt("v1"))
	pol.PublishConfig(t, group, "shop", releaseDoc("shop", "v2", proxy, rollingSteps))
	waitFor(t, g, "shop", 60*time.Second, "v2 healthy after a console publish", healthyAt("v2"))
	if grpcFront.handshakes.Load() == 0 {
		t.Fatal("no TLS handshake on the gRPC front: graylane did not speak TLS to Nacos")
	}
	t.Logf("TLS handshakes: gRPC %d, HTTP %d", grpcFront.handshakes.Load(), httpFront.handshakes.Load())

	// a graylane trusting another CA does not get through: its handshakes
	// fail and it never becomes ready
	ok, failed := grpcFront.handshakes.Load(), grpcFront.failed.Load()
	notReady(t, filepath.Join(g.Bin, "graylane"), map[string]any{
		"source": map[string]any{"type": "nacos"},
		"nacos": map[string]any{"servers": []string{httpFront.addr}, "grpcPort": grpcPort, "group": group, "timeout": "2s",
			"tls": map[string]any{"caFile": tlstest.NewCA(t).CertFile}},
	}, "first read of the config source not finished")
	testenv.Eventually(t, 20*time.Second, "a failed TLS handshake from the graylane trusting another CA", func() error {
		return testenv.Check(grpcFront.failed.Load() > failed, "%d failed handshakes", grpcFront.failed.Load())
	})
	if grpcFront.handshakes.Load() > ok+2 {
		t.Errorf("handshakes completed with a graylane trusting another CA: %d -> %d", ok, grpcFront.handshakes.Load())
	}
}
