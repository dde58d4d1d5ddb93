package sshdial

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host-key errors, matched with errors.Is. Each wraps the
// *knownhosts.KeyError it comes from.
var (
	// ErrHostKeyUnknown: the host is not in known_hosts. graylane never
	// trusts on first use; add the host's key to known_hosts.
	ErrHostKeyUnknown = errors.New("host key not in known_hosts")
	// ErrHostKeyChanged: the host presented a key other than the one
	// known_hosts holds (re-installed host, or a man in the middle).
	ErrHostKeyChanged = errors.New("host key differs from known_hosts")
)

// DefaultDialTimeout bounds connecting and the SSH handshake when
// Config.DialTimeout is not set.
const DefaultDialTimeout = 10 * time.Second

// Config is how to log in to hosts.
type Config struct {
	// Signers are the private keys offered (at least one).
	Signers []gossh.Signer
	// KnownHostsFiles verify host keys (at least one). They are read on
	// every dial, so an edited file takes effect without a restart.
	KnownHostsFiles []string
	// DialTimeout bounds the TCP connection and the SSH handshake
	// (default DefaultDialTimeout).
	DialTimeout time.Duration
}

// Check reports a Config that cannot connect anywhere: no key, no
// known_hosts file, or a known_hosts file that cannot be read or parsed.
func (c Config) Check() error {
	if len(c.Signers) == 0 {
		return errors.New("no ssh key")
	}
	if len(c.KnownHostsFiles) == 0 {
		return errors.New("no known_hosts file (host keys are always verified)")
	}
	if _, err := knownhosts.New(c.KnownHostsFiles...); err != nil {
		return fmt.Errorf("read known_hosts: %w", err)
	}
	return nil
}

func (c Config) timeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return DefaultDialTimeout
}

// LoadKey reads an unencrypted private key (OpenSSH or PEM format).
func LoadKey(file string) (gossh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read ssh key: %w", err)
	}
	s, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse ssh key %s: %w", file, err)
	}
	return s, nil
}

// Dial connects to addr (host:port) as user and logs in, within
// cfg.DialTimeout and ctx. The host's key must be in cfg.KnownHostsFiles:
// otherwise the error wraps ErrHostKeyUnknown or ErrHostKeyChanged (and
// names the host and the files) and nothing is sent to the host beyond
// the handshake.
func Dial(ctx context.Context, cfg Config, user, addr string) (*gossh.Client, error) {
	cb, err := knownhosts.New(cfg.KnownHostsFiles...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	ccfg := &gossh.ClientConfig{
		User:              user,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(cfg.Signers...)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: knownAlgorithms(cb, addr),
		Timeout:           cfg.timeout(),
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if dl, ok := dctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	cc, chans, reqs, err := gossh.NewClientConn(conn, addr, ccfg)
	stop()
	if err != nil {
		conn.Close()
		var kerr *knownhosts.KeyError
		if errors.As(err, &kerr) {
			if len(kerr.Want) == 0 {
				return nil, &hostKeyError{sentinel: ErrHostKeyUnknown, key: kerr,
					msg: fmt.Sprintf("%s is not listed in %s; refusing to connect", addr, strings.Join(cfg.KnownHostsFiles, ", "))}
			}
			return nil, &hostKeyError{sentinel: ErrHostKeyChanged, key: kerr,
				msg: fmt.Sprintf("%s presented a key that does not match %s (possible man-in-the-middle, or the host was re-installed: verify and update known_hosts); refusing to connect", addr, kerr.Want[0].String())}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("ssh handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return gossh.NewClient(cc, chans, reqs), nil
}

// hostKeyError is a refused host key: it matches its sentinel and the
// knownhosts.KeyError behind it.
type hostKeyError struct {
	sentinel error
	key      *knownhosts.KeyError
	msg      string
}

func (e *hostKeyError) Error() string   { return e.sentinel.Error() + ": " + e.msg }
func (e *hostKeyError) Unwrap() []error { return []error{e.sentinel, e.key} }

// probeKey is a throwaway key used to ask known_hosts which key types it
// holds for a host.
var probeKey = func() gossh.PublicKey {
	k, _ := gossh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	return k
}()

// knownAlgorithms returns the host key algorithms known_hosts holds for
// addr, so the server is asked for a key that can be verified (otherwise a
// server offering another key type first looks like a changed key). It
// returns nil (the library's default list) for a host known_hosts does not
// list.
func knownAlgorithms(cb gossh.HostKeyCallback, addr string) []string {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil
	}
	err = cb(addr, tcp, probeKey)
	var kerr *knownhosts.KeyError
	if !errors.As(err, &kerr) || len(kerr.Want) == 0 {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range kerr.Want {
		t := k.Key.Type()
		list := []string{t}
		if t == gossh.KeyAlgoRSA {
			list = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		}
		for _, a := range list {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// Pool keeps one connection per user@address. It is safe for concurrent
// use.
type Pool struct {
	cfg Config

	mu    sync.Mutex
	conns map[string]*gossh.Client
}

// NewPool returns an empty Pool dialling with cfg.
func NewPool(cfg Config) *Pool {
	return &Pool{cfg: cfg, conns: map[string]*gossh.Client{}}
}

// Client returns the connection to user@addr, dialling (Dial) when there
// is none or the last one broke. Two callers dialling at once may both
// dial; one connection is kept.
func (p *Pool) Client(ctx context.Context, user, addr string) (*gossh.Client, error) {
	key := user + "@" + addr
	p.mu.Lock()
	c := p.conns[key]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := Dial(ctx, p.cfg, user, addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.conns[key]; old != nil {
		c.Close()
		return old, nil
	}
	p.conns[key] = c
	go func() { // forget it when it breaks
		c.Wait()
		p.mu.Lock()
		if p.conns[key] == c {
			delete(p.conns, key)
		}
		p.mu.Unlock()
	}()
	return c, nil
}

// Drop closes c and forgets it if it is still user@addr's connection.
func (p *Pool) Drop(user, addr string, c *gossh.Client) {
	key := user + "@" + addr
	p.mu.Lock()
	if p.conns[key] == c {
		delete(p.conns, key)
	}
	p.mu.Unlock()
	c.Close()
}

// Session opens a session on user@addr's connection, dialling again once
// when the cached connection turns out to be dead.
func (p *Pool) Session(ctx context.Context, user, addr string) (*gossh.Session, error) {
	for attempt := 0; ; attempt++ {
		c, err := p.Client(ctx, user, addr)
		if err != nil {
			return nil, err
		}
		s, err := c.NewSession()
		if err == nil {
			return s, nil
		}
		p.Drop(user, addr, c)
		if attempt == 1 {
			return nil, fmt.Errorf("open session: %w", err)
		}
	}
}

// Close closes every connection (sessions on them end). A later call
// dials again.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		c.Close()
		delete(p.conns, k)
	}
}
