package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/graylane/graylane/internal/sshdial"
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

// sshDialer connects an engine's HTTP client through SSH sessions on the
// backend's SSH connection to the engine's host (sshdial.Pool: one per
// user@address, re-dialled when it breaks).
type sshDialer struct {
	pool   *sshdial.Pool
	user   string
	addr   string
	remote string // the command run on the host
}

// sshPool returns the backend's SSH connections, creating the pool on
// first use: the key is read and the known_hosts files are checked then
// (a bad one fails the Apply naming the engine), and known_hosts is read
// again on every dial.
func (p *engines) sshPool() (*sshdial.Pool, error) {
	if p.ssh != nil {
		return p.ssh, nil
	}
	c := p.cfg.SSH
	signer, err := sshdial.LoadKey(c.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := sshdial.Config{Signers: []gossh.Signer{signer}, KnownHostsFiles: c.KnownHostsFiles, DialTimeout: c.DialTimeout}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	p.ssh = sshdial.NewPool(cfg)
	return p.ssh, nil
}

func newSSHDialer(pool *sshdial.Pool, u *url.URL) *sshDialer {
	port := u.Port()
	if port == "" {
		port = "22"
	}
	user := u.User.Username()
	if user == "" {
		user = os.Getenv("USER")
	}
	remote := "docker system dial-stdio"
	if u.Path != "" {
		// the path was validated (spec.SSHPathPattern: no quote, space or '$')
		remote = "docker -H 'unix://" + u.Path + "' system dial-stdio"
	}
	return &sshDialer{pool: pool, user: user, addr: net.JoinHostPort(u.Hostname(), port), remote: remote}
}

// dial opens one connection to the remote engine: a session running
// `docker system dial-stdio`.
func (d *sshDialer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	s, err := d.pool.Session(ctx, d.user, d.addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", d.addr, err)
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
