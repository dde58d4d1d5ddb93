package ssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host-key and locking errors, matched with errors.Is.
var (
	// ErrHostKeyUnknown: the host is not in known_hosts. graylane never
	// trusts on first use; add the host's key to known_hosts.
	ErrHostKeyUnknown = errors.New("host key not in known_hosts")
	// ErrHostKeyChanged: the host presented a key other than the one
	// known_hosts holds (re-installed host, or a man in the middle).
	ErrHostKeyChanged = errors.New("host key differs from known_hosts")
	// ErrLocked: another release of the app holds the deploy lock.
	ErrLocked = errors.New("deploy lock held by another release")
)

// pool keeps one SSH connection per user@address.
type pool struct {
	signers     []gossh.Signer
	knownHosts  []string
	dialTimeout time.Duration

	mu    sync.Mutex
	conns map[string]*gossh.Client
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		c.Close()
		delete(p.conns, k)
	}
}

// client returns a connected client, dialling if needed.
func (p *pool) client(ctx context.Context, user, addr string) (*gossh.Client, error) {
	key := user + "@" + addr
	p.mu.Lock()
	c := p.conns[key]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := p.dial(ctx, user, addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.conns[key]; old != nil {
		c.Close()
		return old, nil
	}
	if p.conns == nil {
		p.conns = map[string]*gossh.Client{}
	}
	p.conns[key] = c
	go func() {
		c.Wait()
		p.mu.Lock()
		if p.conns[key] == c {
			delete(p.conns, key)
		}
		p.mu.Unlock()
	}()
	return c, nil
}

func (p *pool) drop(user, addr string, c *gossh.Client) {
	key := user + "@" + addr
	p.mu.Lock()
	if p.conns[key] == c {
		delete(p.conns, key)
	}
	p.mu.Unlock()
	c.Close()
}

// session opens a session, redialling once if the cached connection died.
func (p *pool) session(ctx context.Context, user, addr string) (*gossh.Session, error) {
	for attempt := 0; ; attempt++ {
		c, err := p.client(ctx, user, addr)
		if err != nil {
			return nil, err
		}
		s, err := c.NewSession()
		if err == nil {
			return s, nil
		}
		p.drop(user, addr, c)
		if attempt == 1 {
			return nil, fmt.Errorf("open session: %w", err)
		}
	}
}

func (p *pool) dial(ctx context.Context, user, addr string) (*gossh.Client, error) {
	cb, err := knownhosts.New(p.knownHosts...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	cfg := &gossh.ClientConfig{
		User:              user,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(p.signers...)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: knownAlgorithms(cb, addr),
		Timeout:           p.dialTimeout,
	}
	dctx, cancel := context.WithTimeout(ctx, p.dialTimeout)
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
	cc, chans, reqs, err := gossh.NewClientConn(conn, addr, cfg)
	stop()
	if err != nil {
		conn.Close()
		var kerr *knownhosts.KeyError
		if errors.As(err, &kerr) {
			if len(kerr.Want) == 0 {
				return nil, fmt.Errorf("%w: %s is not listed in %s; refusing to connect", ErrHostKeyUnknown, addr, strings.Join(p.knownHosts, ", "))
			}
			return nil, fmt.Errorf("%w: %s presented a key that does not match %s (possible man-in-the-middle, or the host was re-installed: verify and update known_hosts); refusing to connect", ErrHostKeyChanged, addr, kerr.Want[0].String())
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("ssh handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return gossh.NewClient(cc, chans, reqs), nil
}

// probeKey is a throwaway key used to ask known_hosts which key types it
// holds for a host.
var probeKey = func() gossh.PublicKey {
	k, _ := gossh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	return k
}()

// knownAlgorithms returns the host key algorithms known_hosts holds for
// addr, so the server is asked for a key we can verify (otherwise a server
// offering another key type first looks like a changed key).
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
		var list []string
		if t == gossh.KeyAlgoRSA {
			list = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		} else {
			list = []string{t}
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

// CommandError is a remote command that exited non-zero.
type CommandError struct {
	ExitStatus int
	// Stderr is the tail of the command's standard error.
	Stderr string
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("exit status %d", e.ExitStatus)
	}
	return fmt.Sprintf("exit status %d: %s", e.ExitStatus, msg)
}

// tailBuffer keeps the last n bytes written.
type tailBuffer struct {
	n int
	b []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.n {
		t.b = t.b[len(t.b)-t.n:]
	}
	return len(p), nil
}

// limitBuffer keeps the first n bytes written.
type limitBuffer struct {
	n int
	bytes.Buffer
}

func (l *limitBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// run executes cmd (a shell command line the backend built, every dynamic
// part quoted) with stdin, within timeout, and returns its stdout.
func (p *pool) run(ctx context.Context, user, addr string, timeout time.Duration, cmd string, stdin io.Reader) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := p.session(ctx, user, addr)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	stdout := &limitBuffer{n: 4 << 20}
	stderr := &tailBuffer{n: 2048}
	s.Stdout, s.Stderr = stdout, stderr
	if stdin != nil {
		s.Stdin = stdin
	}
	done := make(chan error, 1)
	if err := s.Start(cmd); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(gossh.SIGKILL)
		s.Close()
		<-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("timed out after %v: %w", timeout, ctx.Err())
		}
		return nil, ctx.Err()
	}
	var exit *gossh.ExitError
	if errors.As(err, &exit) {
		return stdout.Bytes(), &CommandError{ExitStatus: exit.ExitStatus(), Stderr: string(stderr.b)}
	}
	if err != nil {
		return nil, err
	}
	return stdout.Bytes(), nil
}

// script runs a POSIX sh script on the host: it goes to `sh -s` on stdin,
// so the remote login shell (bash, zsh, even csh) only ever parses "sh -s".
func (p *pool) script(ctx context.Context, user, addr string, timeout time.Duration, script string) ([]byte, error) {
	return p.run(ctx, user, addr, timeout, "sh -s", strings.NewReader(script))
}

// remoteLock is a flock(1) held by a remote `cat` for as long as the
// session stays open: closing it, or graylane dying, releases the lock.
type remoteLock struct {
	s     *gossh.Session
	stdin io.WriteCloser
	done  chan error
}

func (p *pool) lock(ctx context.Context, user, addr, root string, timeout time.Duration) (*remoteLock, error) {
	s, err := p.session(ctx, user, addr)
	if err != nil {
		return nil, err
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	stderr := &tailBuffer{n: 1024}
	s.Stderr = stderr
	lockFile := root + "/.graylane.lock"
	// The script arrives on stdin; once sh has exec'd cat, the still open
	// stdin keeps cat (and the inherited fd 9 holding the lock) alive. If
	// flock fails, sh must not wait for more script: exit 1. (Should cat
	// ever read that line, it discards it.)
	script := fmt.Sprintf("mkdir -p -- %s && exec 9>>%s && flock -n 9 && echo locked && exec cat >/dev/null\nexit 1\n", quote(root), quote(lockFile))
	if err := s.Start("sh -s"); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := io.WriteString(stdin, script); err != nil {
		s.Close()
		return nil, err
	}
	l := &remoteLock{s: s, stdin: stdin, done: make(chan error, 1)}
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		txt, _ := r.ReadString('\n')
		line <- txt
		io.Copy(io.Discard, r)
		l.done <- s.Wait()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case txt := <-line:
		if strings.TrimSpace(txt) == "locked" {
			return l, nil
		}
		err := <-l.done
		s.Close()
		var exit *gossh.ExitError
		if errors.As(err, &exit) && exit.ExitStatus() == 1 && strings.TrimSpace(string(stderr.b)) == "" {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, lockFile)
		}
		return nil, fmt.Errorf("take lock %s: %v: %s", lockFile, err, strings.TrimSpace(string(stderr.b)))
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	case <-t.C:
		s.Close()
		return nil, fmt.Errorf("take lock %s: timed out after %v", lockFile, timeout)
	}
}

func (l *remoteLock) release() {
	l.stdin.Close()
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
	}
	l.s.Close()
}

// quote makes s one word for a POSIX shell, whatever it contains.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
