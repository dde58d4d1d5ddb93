package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/testsupport/tlstest"
)

// httpsFront serves target (an http:// base URL) over HTTPS with a
// certificate from ca, as a TLS-terminating load balancer in front of
// Apollo would. Long polls pass through unbuffered.
func httpsFront(t *testing.T, ca *tlstest.CA, name, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	srv := httptest.NewUnstartedServer(rp)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, name).TLS(t)}}
	srv.StartTLS()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv.URL + "/"
}

// TestEndToEndApolloOverHTTPS: Apollo's config service and portal behind
// HTTPS with a private CA (apollo.tls.caFile). Releases published in
// Apollo roll out, and graylane's own writes (set-version through the
// portal's Open API) verify the portal's certificate against that CA. A
// graylane trusting another CA is refused by the TLS handshake and says so
// on /readyz.
func TestEndToEndApolloOverHTTPS(t *testing.T) {
	testenv.IntegrationTest(t)
	a := newApollo(t)
	ca := tlstest.NewCA(t)
	cfgSvc := httpsFront(t, ca, "apollo-config", a.srv.URL())
	portal := httpsFront(t, ca, "apollo-portal", a.srv.PortalURL())
	config := a.config()
	ap := config["apollo"].(map[string]any)
	ap["configService"], ap["portal"] = cfgSvc, portal
	ap["tls"] = map[string]any{"caFile": ca.CertFile}

	proxy := testenv.FreePort(t)
	a.release(t, "shop", releaseDoc("shop", "v1", proxy, rollingSteps))
	g := graylanetest.Start(t, graylanetest.Options{Config: config})
	waitFor(t, g, "shop", 60*time.Second, "v1 healthy from Apollo over HTTPS", healthyAt("v1"))
	if err := g.Client().SetVersion(context.Background(), "shop", "v2"); err != nil {
		t.Fatalf("set-version (an Open API write over HTTPS): %v", err)
	}
	waitFor(t, g, "shop", 60*time.Second, "v2 healthy", healthyAt("v2"))
	found := false
	for _, r := range a.srv.Releases("graylane", "default", a.ns) {
		found = found || (strings.Contains(r.Name, "shop") && strings.Contains(r.Name, "v2"))
	}
	if !found {
		t.Fatalf("no Apollo release for shop v2 written through the HTTPS portal")
	}

	// the same graylane trusting another CA
	ap["tls"] = map[string]any{"caFile": tlstest.NewCA(t).CertFile}
	notReady(t, filepath.Join(g.Bin, "graylane"), config, "certificate")
}

// notReady runs `graylane serve` with config (on its own ports and data
// directory) and waits until /readyz answers 503 with a body containing
// want; a 200 fails the test.
func notReady(t *testing.T, bin string, config map[string]any, want string) {
	t.Helper()
	dir := t.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	config["http"] = map[string]any{"addr": httpAddr}
	config["data"] = map[string]any{"dir": filepath.Join(dir, "data")}
	config["etcd"] = map[string]any{"embedded": map[string]any{
		"clientAddr": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"peerAddr":   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
	}}
	b, _ := yaml.Marshal(config)
	file := filepath.Join(dir, "graylane.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", file)
	cmd.Dir = dir
	logf, _ := os.Create(filepath.Join(dir, "graylane.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait(); graylanetest.KillProxies(dir) }()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("/readyz answering 503 with %q", want), func() error {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return testenv.Stop(fmt.Errorf("graylane is ready: %s", body))
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), want) {
			log, _ := os.ReadFile(filepath.Join(dir, "graylane.log"))
			return fmt.Errorf("answer %d %s\n%s", resp.StatusCode, body, tailLines(string(log), 20))
		}
		t.Logf("/readyz: %d %s", resp.StatusCode, body)
		return nil
	})
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
