package sshdial_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/graylane/graylane/internal/sshdial"
	"github.com/graylane/graylane/testsupport/sshdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func run(t *testing.T, p *sshdial.Pool, user, addr, cmd string) (string, error) {
	t.Helper()
	s, err := p.Session(context.Background(), user, addr)
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.Output(cmd)
	return strings.TrimSpace(string(out)), err
}

// Against a real OpenSSH server: a listed host is reached and commands
// run; the pool keeps one connection per user@address and dials again
// when it breaks; an unlisted host and a changed key are refused with
// their sentinels (and knownhosts' KeyError); known_hosts is read on every
// dial, so a key added to it takes effect at once.
func TestDialAndPool(t *testing.T) {
	testenv.IntegrationTest(t)
	c := sshdtest.Start(t, 2)
	cfg := sshdial.Config{Signers: []gossh.Signer{c.Signer}, KnownHostsFiles: []string{c.KnownHosts}}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	p := sshdial.NewPool(cfg)
	defer p.Close()
	h0 := c.Hosts[0]

	if out, err := run(t, p, c.User, h0.Addr, "echo hi"); err != nil || out != "hi" {
		t.Fatalf("run on %s: %q %v", h0.Name, out, err)
	}
	c1, err := p.Client(context.Background(), c.User, h0.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := p.Client(context.Background(), c.User, h0.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 {
		t.Fatal("two Clients for the same user@address: the connection was not kept")
	}
	// the connection breaks: the next session dials again
	c1.Close()
	if out, err := run(t, p, c.User, h0.Addr, "echo again"); err != nil || out != "again" {
		t.Fatalf("run after the connection broke: %q %v", out, err)
	}
	if c3, err := p.Client(context.Background(), c.User, h0.Addr); err != nil || c3 == c1 {
		t.Fatalf("after a break the pool still hands out the dead connection (%v)", err)
	}

	// an unlisted host: refused, with the host and the file named
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ucfg := sshdial.Config{Signers: []gossh.Signer{c.Signer}, KnownHostsFiles: []string{empty}}
	_, err = sshdial.Dial(context.Background(), ucfg, c.User, h0.Addr)
	var kerr *knownhosts.KeyError
	if !errors.Is(err, sshdial.ErrHostKeyUnknown) || !errors.As(err, &kerr) || !strings.Contains(err.Error(), h0.Addr) || !strings.Contains(err.Error(), empty) {
		t.Fatalf("Dial to an unlisted host = %v, want ErrHostKeyUnknown naming %s and %s", err, h0.Addr, empty)
	}
	// known_hosts is read on every dial: once the key is added, it connects
	line := knownhosts.Line([]string{knownhosts.Normalize(h0.Addr)}, h0.HostKey()) + "\n"
	if err := os.WriteFile(empty, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	up := sshdial.NewPool(ucfg)
	defer up.Close()
	if out, err := run(t, up, c.User, h0.Addr, "echo listed"); err != nil || out != "listed" {
		t.Fatalf("run after adding the host to known_hosts: %q %v", out, err)
	}

	// a changed key: refused, naming the key known_hosts holds
	old := c.Hosts[1].HostKey()
	c.RegenerateHostKey(t, 1)
	_, err = sshdial.Dial(context.Background(), cfg, c.User, c.Hosts[1].Addr)
	oldKey := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(old)))
	if !errors.Is(err, sshdial.ErrHostKeyChanged) || errors.Is(err, sshdial.ErrHostKeyUnknown) || !strings.Contains(err.Error(), oldKey) {
		t.Fatalf("Dial to a re-keyed host = %v, want ErrHostKeyChanged naming the old key %s", err, oldKey)
	}
	if _, err := run(t, p, c.User, c.Hosts[1].Addr, "true"); !errors.Is(err, sshdial.ErrHostKeyChanged) {
		t.Fatalf("a pool session on the re-keyed host = %v, want ErrHostKeyChanged", err)
	}
}
