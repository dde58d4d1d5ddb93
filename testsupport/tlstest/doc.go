// Package tlstest makes throwaway X.509 certificates for tests of TLS
// connections: a CA, server certificates for loopback names and addresses,
// and client certificates for mutual TLS, written as PEM files.
//
// Entry point: NewCA.
//
//	ca := tlstest.NewCA(t)
//	srv := ca.Server(t, "etcd")          // srv.CertFile, srv.KeyFile: localhost, 127.0.0.1
//	cli := ca.Client(t, "graylane")      // for --client-cert-auth
//	// ca.CertFile is the bundle clients and servers trust
package tlstest
