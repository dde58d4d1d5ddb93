package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// a pool that trusts it.
func selfSigned(t *testing.T, dir string) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "graylane test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, pool
}

// With http.tls.certFile and keyFile, graylane serves the API and the
// console over HTTPS only, and console session cookies are Secure.
func TestEndToEndTLS(t *testing.T) {
	testenv.IntegrationTest(t)
	bin := graylanetest.Binaries(t)
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	port := testenv.FreePort(t)
	cfg := fmt.Sprintf(`http:
  addr: 127.0.0.1:%d
  tls: {certFile: %s, keyFile: %s}
  tokens: [{name: ops, token: ops-token-123, role: write}]
data: {dir: %s}
etcd: {embedded: {clientAddr: 127.0.0.1:%d, peerAddr: 127.0.0.1:%d}}
`, port, cert, key, filepath.Join(dir, "data"), testenv.FreePort(t), testenv.FreePort(t))
	if err := os.WriteFile(filepath.Join(dir, "graylane.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "graylane.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "graylane"), "serve", "--config", filepath.Join(dir, "graylane.yaml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); graylanetest.KillProxies(dir) })
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "graylane.log"))
			t.Logf("graylane.log:\n%s", log)
		}
	})
	testenv.Eventually(t, 60*time.Second, "HTTPS /readyz answers 200", func() error {
		resp, err := hc.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return testenv.Check(resp.StatusCode == 200, "%s", resp.Status)
	})
	// the console over HTTPS
	resp, err := hc.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<div id="root">`) {
		t.Fatalf("console over HTTPS: %d %s", resp.StatusCode, body)
	}
	// a session cookie is Secure
	resp, err = hc.Post(base+"/api/v1/session", "application/json", strings.NewReader(`{"token":"ops-token-123"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure || !resp.Cookies()[0].HttpOnly {
		t.Fatalf("session cookie over TLS: %d %+v", resp.StatusCode, resp.Cookies())
	}
	// plain HTTP gets no API
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered /readyz")
		}
	}
}
