package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// tlsFiles holds the <key>.* TLS settings of one connection (etcd.tls,
// apollo.tls), all empty by default: certFile and keyFile are a client
// certificate and its key (PEM), caFile the CA bundle that signed the
// server's certificate (empty: the system roots), serverName the name to
// verify in it (default: the host connected to).
type tlsFiles struct {
	key                                   string
	CertFile, KeyFile, CAFile, ServerName string
}

func readTLS(v *viper.Viper, key string) tlsFiles {
	return tlsFiles{
		key:        key,
		CertFile:   v.GetString(key + ".certFile"),
		KeyFile:    v.GetString(key + ".keyFile"),
		CAFile:     v.GetString(key + ".caFile"),
		ServerName: v.GetString(key + ".serverName"),
	}
}

func readEtcdTLS(v *viper.Viper) tlsFiles { return readTLS(v, "etcd.tls") }

func (t tlsFiles) enabled() bool {
	return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" || t.ServerName != ""
}

// config builds the client TLS configuration: the client certificate if
// one is set, and the CA. Errors name the key at fault.
func (t tlsFiles) config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return nil, fmt.Errorf("%s.keyFile: required with %s.certFile", t.key, t.key)
	case t.KeyFile != "" && t.CertFile == "":
		return nil, fmt.Errorf("%s.certFile: required with %s.keyFile", t.key, t.key)
	case t.CertFile != "":
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.certFile/keyFile (%s, %s): %w", t.key, t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.caFile: %w", t.key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.caFile: %s holds no PEM certificate", t.key, t.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// optionalTLS is config() when any <key>.* is set, else nil (the
// defaults of the client using it).
func optionalTLS(v *viper.Viper, key string) (*tls.Config, error) {
	t := readTLS(v, key)
	if !t.enabled() {
		return nil, nil
	}
	return t.config()
}

// etcdClientConfig is the client configuration for an external etcd
// (etcd.endpoints, etcd.dialTimeout, etcd.tls.*). With TLS configured
// every endpoint must be https:// (or a bare host:port, which then speaks
// TLS): a plain http:// endpoint would silently send graylane's state in
// the clear, so it is refused.
func etcdClientConfig(v *viper.Viper, endpoints []string) (clientv3.Config, error) {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: v.GetDuration("etcd.dialTimeout")}
	t := readEtcdTLS(v)
	if !t.enabled() {
		for _, e := range endpoints {
			if strings.HasPrefix(e, "https://") {
				// system roots, no client certificate
				cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
				break
			}
		}
		return cfg, nil
	}
	for _, e := range endpoints {
		if u, err := url.Parse(e); err == nil && u.Scheme == "http" {
			return cfg, fmt.Errorf("etcd.endpoints: %s is plain http but etcd.tls is set; use https://", e)
		}
	}
	tc, err := t.config()
	if err != nil {
		return cfg, err
	}
	cfg.TLS = tc
	return cfg, nil
}

// probeEtcdTLS makes one TLS handshake with each endpoint, with the
// configuration the etcd client uses. A TLS failure (an untrusted or
// misnamed server certificate, a client certificate etcd refuses) is a
// configuration error and is returned naming etcd.tls; an endpoint that is
// merely unreachable is not: graylane starts and holds releases until etcd
// is back, as it does without TLS. (The etcd client itself only reports
// "context deadline exceeded" for all of these.)
func probeEtcdTLS(ctx context.Context, endpoints []string, tc *tls.Config, timeout time.Duration, log *slog.Logger) error {
	var tlsErrs []string
	for _, ep := range endpoints {
		err := handshake(ctx, ep, tc, timeout)
		switch {
		case err == nil:
		case isTLSError(err):
			tlsErrs = append(tlsErrs, fmt.Sprintf("%s: %v", ep, err))
		default:
			log.Warn("etcd endpoint unreachable at start; continuing", "endpoint", ep, "err", err)
		}
	}
	if len(tlsErrs) > 0 {
		return fmt.Errorf("etcd.tls: TLS with etcd failed (check etcd.tls.certFile, keyFile, caFile, serverName): %s", strings.Join(tlsErrs, "; "))
	}
	return nil
}

func handshake(ctx context.Context, endpoint string, tc *tls.Config, timeout time.Duration) error {
	host := endpoint
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		host = u.Host
	}
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			cfg.ServerName = h
		}
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	defer conn.Close()
	// With TLS 1.3 the server checks the client certificate after the
	// client has finished its half of the handshake: a refusal arrives as
	// an alert on the first read. A server that accepted us waits for our
	// request instead, so a read timeout means success.
	_ = conn.SetReadDeadline(time.Now().Add(min(timeout, time.Second)))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	}
	return nil
}

func isTLSError(err error) bool {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:")
}
