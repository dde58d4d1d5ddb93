package sshdial

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func pubKey(t *testing.T, rsaKey bool) gossh.PublicKey {
	t.Helper()
	var raw any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		raw = &k.PublicKey
	} else {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw = pub
	}
	k, err := gossh.NewPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// knownAlgorithms asks the server only for the key types known_hosts holds
// for the host (RSA in its three signature forms), and for nothing in
// particular when the host is not listed.
func TestKnownAlgorithms(t *testing.T) {
	ed, rs := pubKey(t, false), pubKey(t, true)
	file := filepath.Join(t.TempDir(), "known_hosts")
	lines := knownhosts.Line([]string{"127.0.0.1:2222"}, rs) + "\n" +
		knownhosts.Line([]string{"127.0.0.1:2222"}, ed) + "\n" +
		knownhosts.Line([]string{"127.0.0.2:2222"}, ed) + "\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"127.0.0.1:2222", []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA, gossh.KeyAlgoED25519}},
		{"127.0.0.2:2222", []string{gossh.KeyAlgoED25519}},
		{"127.0.0.3:2222", nil},
		{"not an address", nil},
	} {
		// knownhosts lists a host's keys in no fixed order; each RSA key
		// brings its three signature forms
		got := knownAlgorithms(cb, tc.addr)
		sort.Strings(got)
		sort.Strings(tc.want)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("knownAlgorithms(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
