package docker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig configures ssh:// engines: graylane logs in with KeyFile,
// verifies the host's key against KnownHostsFiles (an unknown or changed
// key is refused), and runs `docker system dial-stdio` there (with -H
// unix://PATH when the URL has a path), which connects the session to the
// remote engine, as the docker CLI's own ssh:// support does. The remote
// host needs the docker CLI.
type SSHConfig struct {
	KeyFile         string
	KnownHostsFiles []string
	// DialTimeout bounds the TCP connection and SSH handshake (default 10s).
	DialTimeout time.Duration
}

// sshDialer connects an engine's HTTP client through SSH sessions on one
// SSH connection per engine, re-dialled when it breaks.
type sshDialer struct {
	cfg    *gossh.ClientConfig
	addr   string
	remote string // the command run on the host
	tmo    time.Duration

	mu     sync.Mutex
	client *gossh.Client
}

func newSSHDialer(c *SSHConfig, u *url.URL) (*sshDialer, error) {
	key, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", c.KeyFile, err)
	}
	cb, err := knownhosts.New(c.KnownHostsFiles...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	user := u.User.Username()
	if user == "" {
		user = os.Getenv("USER")
	}
	tmo := c.DialTimeout
	if tmo <= 0 {
		tmo = 10 * time.Second
	}
	remote := "docker system dial-stdio"
	if u.Path != "" {
		// the path was validated (spec.SSHPathPattern: no quote, space or '$')
		remote = "docker -H 'unix://" + u.Path + "' system dial-stdio"
	}
	return &sshDialer{
		cfg: &gossh.ClientConfig{
			User: user, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
			HostKeyCallback: cb, HostKeyAlgorithms: knownKeyTypes(cb, addr), Timeout: tmo,
		},
		addr: addr, remote: remote, tmo: tmo,
	}, nil
}

// knownKeyTypes returns the key types known_hosts lists for addr, so the
// server is asked for a key that can be verified.
func knownKeyTypes(cb gossh.HostKeyCallback, addr string) []string {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil
	}
	probe, _ := gossh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	var kerr *knownhosts.KeyError
	if !errors.As(cb(addr, tcp, probe), &kerr) {
		return nil
	}
	var out []string
	for _, k := range kerr.Want {
		if t := k.Key.Type(); t == gossh.KeyAlgoRSA {
			out = append(out, gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA)
		} else {
			out = append(out, t)
		}
	}
	return out
}

func (d *sshDialer) sshClient(ctx context.Context) (*gossh.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client != nil {
		return d.client, nil
	}
	dctx, cancel := context.WithTimeout(ctx, d.tmo)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", d.addr, err)
	}
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	cc, chans, reqs, err := gossh.NewClientConn(conn, d.addr, d.cfg)
	stop()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh %s: %w", d.addr, err)
	}
	d.client = gossh.NewClient(cc, chans, reqs)
	go func(c *gossh.Client) { // forget it when it breaks
		c.Wait()
		d.mu.Lock()
		if d.client == c {
			d.client = nil
		}
		d.mu.Unlock()
	}(d.client)
	return d.client, nil
}

// dial opens one connection to the remote engine: a session running
// `docker system dial-stdio`.
func (d *sshDialer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, err := d.sshClient(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.NewSession()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ssh %s: session: %w", d.addr, err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	stderr := &limitWriter{n: 4 << 10}
	s.Stderr = stderr
	if err := s.Start(d.remote); err != nil {
		s.Close()
		return nil, fmt.Errorf("ssh %s: %s: %w", d.addr, d.remote, err)
	}
	return &stdioConn{s: s, in: in, out: out, addr: d.addr, stderr: stderr}, nil
}

// stdioConn is a net.Conn over an SSH session's stdin and stdout.
type stdioConn struct {
	s      *gossh.Session
	in     io.WriteCloser
	out    io.Reader
	addr   string
	stderr *limitWriter
	once   sync.Once
}

func (c *stdioConn) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err == io.EOF && n == 0 {
		if msg := c.stderr.String(); msg != "" {
			return 0, fmt.Errorf("ssh %s: docker system dial-stdio: %s", c.addr, msg)
		}
	}
	return n, err
}
func (c *stdioConn) Write(p []byte) (int, error) { return c.in.Write(p) }
func (c *stdioConn) Close() error {
	c.once.Do(func() { c.in.Close(); c.s.Close() })
	return nil
}
func (c *stdioConn) LocalAddr() net.Addr                { return sshAddr("graylane") }
func (c *stdioConn) RemoteAddr() net.Addr               { return sshAddr(c.addr) }
func (c *stdioConn) SetDeadline(t time.Time) error      { return nil }
func (c *stdioConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *stdioConn) SetWriteDeadline(t time.Time) error { return nil }

type sshAddr string

func (a sshAddr) Network() string { return "ssh" }
func (a sshAddr) String() string  { return string(a) }

// limitWriter keeps the first n bytes written to it.
type limitWriter struct {
	mu sync.Mutex
	w  strings.Builder
	n  int
}

func (l *limitWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.w.String())
}

func (l *limitWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.w.Len(); room > 0 {
		if len(p) > room {
			l.w.Write(p[:room])
		} else {
			l.w.Write(p)
		}
	}
	return len(p), nil
}
