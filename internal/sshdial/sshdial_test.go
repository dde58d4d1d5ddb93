package sshdial_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/graylane/graylane/internal/sshdial"
)

func writeKey(t *testing.T) (string, gossh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return file, s
}

func TestLoadKey(t *testing.T) {
	file, want := writeKey(t)
	s, err := sshdial.LoadKey(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.PublicKey().Marshal()) != string(want.PublicKey().Marshal()) {
		t.Fatal("LoadKey returned another key")
	}
	if _, err := sshdial.LoadKey(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "read ssh key") {
		t.Errorf("missing key file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := sshdial.LoadKey(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("unparsable key file: %v, want an error naming it", err)
	}
}

func TestConfigCheck(t *testing.T) {
	_, signer := writeKey(t)
	known := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(known, nil, 0o600)
	garbled := filepath.Join(t.TempDir(), "garbled")
	os.WriteFile(garbled, []byte("127.0.0.1 ssh-ed25519 !!!notbase64\n"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  sshdial.Config
		want string // "" = valid
	}{
		{"valid", sshdial.Config{Signers: []gossh.Signer{signer}, KnownHostsFiles: []string{known}}, ""},
		{"no key", sshdial.Config{KnownHostsFiles: []string{known}}, "no ssh key"},
		{"no known_hosts", sshdial.Config{Signers: []gossh.Signer{signer}}, "no known_hosts"},
		{"missing known_hosts", sshdial.Config{Signers: []gossh.Signer{signer}, KnownHostsFiles: []string{known + ".missing"}}, "read known_hosts"},
		{"garbled known_hosts", sshdial.Config{Signers: []gossh.Signer{signer}, KnownHostsFiles: []string{garbled}}, "read known_hosts"},
	} {
		err := tc.cfg.Check()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A host that accepts the connection but never speaks SSH: Dial gives up
// after DialTimeout instead of hanging.
func TestDialTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, signer := writeKey(t)
	known := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(known, nil, 0o600)
	cfg := sshdial.Config{Signers: []gossh.Signer{signer}, KnownHostsFiles: []string{known}, DialTimeout: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		_, err := sshdial.Dial(context.Background(), cfg, "u", l.Addr().String())
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Dial to a silent host succeeded")
		}
	case <-time.After(time.Minute): // a bound for a broken run, not a timing assertion
		t.Fatal("Dial to a silent host did not give up")
	}
	// a cancelled ctx ends it too, with ctx's error
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sshdial.Dial(ctx, cfg, "u", l.Addr().String()); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled ctx = %v, want context.Canceled", err)
	}
}
