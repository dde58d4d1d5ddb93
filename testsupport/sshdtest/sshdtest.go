package sshdtest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Host is one sshd "machine".
type Host struct {
	// Name is "host0", "host1", ...
	Name string
	// IP is the host's own loopback address; Addr is IP:port of its sshd.
	IP, Addr string
	// Dir holds the host's sshd config, keys and log; Root is the
	// (initially empty) directory deployments go to.
	Dir, Root string

	mu      sync.Mutex
	hostKey ssh.PublicKey
	keyFile string
	logFile string
	cmd     *exec.Cmd
	done    chan struct{}
}

// Cluster is a set of hosts sharing one client key and known_hosts file.
type Cluster struct {
	Hosts []*Host
	// User is the login user (the user running the tests).
	User string
	// KeyFile is the client's private key (OpenSSH format, no passphrase).
	KeyFile string
	// Signer is the same key, ready for ssh.PublicKeys.
	Signer ssh.Signer
	// KnownHosts lists every host's key as first generated.
	KnownHosts string
}

// Start runs n sshd hosts and stops them when the test ends. A missing
// sshd is reported with testenv.Unavailable.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	testenv.AssertIntegrationTest(t, "sshd")
	bin := testenv.LookPath(t, "sshd")
	if os.Geteuid() == 0 {
		// Privilege separation directory, required when sshd runs as root.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			testenv.Unavailable(t, "create /run/sshd: %v", err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &Cluster{User: u.Username, KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	pub, signer := writeKey(t, c.KeyFile)
	c.Signer = signer
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	third := 20 + os.Getpid()%200 // spread concurrent test binaries over 127.0.X.0/24
	var known strings.Builder
	for i := range n {
		ip := fmt.Sprintf("127.0.%d.%d", third, i+2)
		port, err := freePortOn(ip)
		if err != nil {
			testenv.Unavailable(t, "no free port on %s: %v", ip, err)
		}
		h := &Host{Name: fmt.Sprintf("host%d", i), IP: ip, Addr: net.JoinHostPort(ip, strconv.Itoa(port)), Dir: filepath.Join(dir, fmt.Sprintf("host%d", i))}
		h.Root = filepath.Join(h.Dir, "root")
		h.keyFile = filepath.Join(h.Dir, "ssh_host_ed25519_key")
		h.logFile = filepath.Join(h.Dir, "sshd.log")
		if err := os.MkdirAll(h.Root, 0o755); err != nil {
			t.Fatal(err)
		}
		h.hostKey, _ = writeKey(t, h.keyFile)
		conf := fmt.Sprintf(`ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
MaxSessions 64
MaxStartups 64
LogLevel VERBOSE
SetEnv HOME=%s
`, h.Addr, h.keyFile, authorized, filepath.Join(h.Dir, "sshd.pid"), h.Dir)
		cfg := filepath.Join(h.Dir, "sshd_config")
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		h.cmd = exec.Command(bin, "-D", "-f", cfg, "-E", h.logFile)
		h.done = make(chan struct{})
		if err := h.cmd.Start(); err != nil {
			testenv.Unavailable(t, "start sshd: %v", err)
		}
		go func(h *Host) { h.cmd.Wait(); close(h.done) }(h)
		c.Hosts = append(c.Hosts, h)
		fmt.Fprintf(&known, "%s %s", knownHostsAddr(h.Addr), ssh.MarshalAuthorizedKey(h.hostKey))
	}
	t.Cleanup(func() {
		for _, h := range c.Hosts {
			if t.Failed() {
				t.Logf("sshd %s (%s) log tail:\n%s", h.Name, h.Addr, h.LogTail(15))
			}
			h.stop()
		}
	})
	if err := os.WriteFile(c.KnownHosts, []byte(known.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, h := range c.Hosts {
		if err := h.waitKey(ctx, h.HostKey()); err != nil {
			testenv.Unavailable(t, "sshd %s did not come up: %v\n%s", h.Addr, err, h.LogTail(20))
		}
	}
	return c
}

// HostKey returns the key the host currently serves.
func (h *Host) HostKey() ssh.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostKey
}

// PID is the sshd listener's pid.
func (h *Host) PID() int { return h.cmd.Process.Pid }

// RegenerateHostKey gives host i a new host key (as a re-installed or
// impersonated machine would have) without touching known_hosts, and waits
// until sshd serves it.
func (c *Cluster) RegenerateHostKey(t testing.TB, i int) ssh.PublicKey {
	t.Helper()
	h := c.Hosts[i]
	pub, _ := writeKey(t, h.keyFile)
	h.mu.Lock()
	h.hostKey = pub
	h.mu.Unlock()
	// sshd re-executes itself on SIGHUP and reloads its host keys. A
	// connection accepted just before the re-exec may already get the new
	// key (each connection's child reads the keys afresh) while the
	// listener is still away: wait for the re-executed listener first.
	var offset int64
	if st, err := os.Stat(h.logFile); err == nil {
		offset = st.Size()
	}
	if err := syscall.Kill(h.PID(), syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP sshd %s: %v", h.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.waitLog(ctx, offset, "Server listening on"); err != nil {
		t.Fatalf("sshd %s did not restart after SIGHUP: %v\n%s", h.Name, err, h.LogTail(20))
	}
	if err := h.waitKey(ctx, pub); err != nil {
		t.Fatalf("sshd %s did not serve its new key: %v\n%s", h.Name, err, h.LogTail(20))
	}
	return pub
}

// waitLog polls the host's log until text appears after offset.
func (h *Host) waitLog(ctx context.Context, offset int64, text string) error {
	return testenv.Poll(ctx, func() error {
		select {
		case <-h.done:
			return testenv.Stop(errors.New("sshd exited"))
		default:
		}
		b, err := os.ReadFile(h.logFile)
		return testenv.Check(err == nil && int64(len(b)) >= offset && strings.Contains(string(b[offset:]), text), "%q not logged (%v)", text, err)
	})
}

// waitKey polls until a handshake with the host presents want.
func (h *Host) waitKey(ctx context.Context, want ssh.PublicKey) error {
	return testenv.Poll(ctx, func() error {
		select {
		case <-h.done:
			return testenv.Stop(errors.New("sshd exited"))
		default:
		}
		got, err := serverKey(ctx, h.Addr)
		if err != nil {
			return err
		}
		return testenv.Check(string(got.Marshal()) == string(want.Marshal()), "still serving the previous host key")
	})
}

var errGotKey = errors.New("got key")

// serverKey performs a handshake far enough to learn the server's host key.
func serverKey(ctx context.Context, addr string) (ssh.PublicKey, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:              "probe",
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errGotKey
		},
	}
	_, _, _, err = ssh.NewClientConn(conn, addr, cfg)
	if key != nil {
		return key, nil
	}
	return nil, err
}

func (h *Host) stop() {
	select {
	case <-h.done:
		return
	default:
	}
	syscall.Kill(h.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.done
	}
}

// LogTail returns the last n lines of the host's sshd log.
func (h *Host) LogTail(n int) string {
	f, err := os.Open(h.logFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// writeKey generates an ed25519 key, writes its private half in OpenSSH
// format to file (0600) and returns the public key and a signer.
func writeKey(t testing.TB, file string) (ssh.PublicKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "graylane-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".tmp", pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey(), signer
}

// knownHostsAddr formats host:port the way known_hosts writes it.
func knownHostsAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if port == "22" {
		return host
	}
	return "[" + host + "]:" + port
}

// FreePortOn returns a TCP port free a moment ago on ip.
func FreePortOn(t testing.TB, ip string) int {
	t.Helper()
	p, err := freePortOn(ip)
	if err != nil {
		t.Fatalf("free port on %s: %v", ip, err)
	}
	return p
}

func freePortOn(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// BuildHostApp builds (once, cached across runs) the hostapp test program
// and returns its path.
func BuildHostApp(t testing.TB) string {
	t.Helper()
	return testenv.BuildTool(t, "testsupport/sshdtest/hostapp", ".", "hostapp")
}
