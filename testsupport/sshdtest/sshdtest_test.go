package sshdtest_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/graylane/graylane/testsupport/sshdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func dial(t *testing.T, c *sshdtest.Cluster, h *sshdtest.Host) (*ssh.Client, error) {
	t.Helper()
	cb, err := knownhosts.New(c.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Dial("tcp", h.Addr, &ssh.ClientConfig{
		User:            c.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(c.Signer)},
		HostKeyCallback: cb,
		Timeout:         5 * time.Second,
	})
}

func TestHostsAndChangedKey(t *testing.T) {
	testenv.IntegrationTest(t)
	c := sshdtest.Start(t, 2)
	for _, h := range c.Hosts {
		cl, err := dial(t, c, h)
		if err != nil {
			t.Fatalf("dial %s: %v", h.Addr, err)
		}
		s, err := cl.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Output("touch " + h.Root + "/marker && echo hi")
		cl.Close()
		if err != nil || strings.TrimSpace(string(out)) != "hi" {
			t.Fatalf("%s: %q %v", h.Name, out, err)
		}
		if _, err := os.Stat(h.Root + "/marker"); err != nil {
			t.Fatalf("command did not run on %s: %v", h.Name, err)
		}
	}
	if c.Hosts[0].IP == c.Hosts[1].IP {
		t.Fatalf("hosts share address %s", c.Hosts[0].IP)
	}
	c.RegenerateHostKey(t, 1)
	_, err := dial(t, c, c.Hosts[1])
	var kerr *knownhosts.KeyError
	if !errors.As(err, &kerr) || len(kerr.Want) == 0 {
		t.Fatalf("dial re-keyed host: got %v, want a knownhosts.KeyError with the old key", err)
	}
	if cl, err := dial(t, c, c.Hosts[0]); err != nil {
		t.Fatalf("untouched host refused: %v", err)
	} else {
		cl.Close()
	}
}

func TestBuildHostApp(t *testing.T) {
	testenv.IntegrationTest(t)
	p := sshdtest.BuildHostApp(t)
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("hostapp not built: %v", err)
	}
}
