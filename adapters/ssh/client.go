package ssh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/graylane/graylane/internal/sshdial"
)

// Host-key and locking errors, matched with errors.Is.
var (
	// ErrHostKeyUnknown: the host is not in known_hosts. graylane never
	// trusts on first use; add the host's key to known_hosts.
	ErrHostKeyUnknown = sshdial.ErrHostKeyUnknown
	// ErrHostKeyChanged: the host presented a key other than the one
	// known_hosts holds (re-installed host, or a man in the middle).
	ErrHostKeyChanged = sshdial.ErrHostKeyChanged
	// ErrLocked: another release of the app holds the deploy lock.
	ErrLocked = errors.New("deploy lock held by another release")
)

// pool keeps one SSH connection per user@address (sshdial.Pool) and runs
// the backend's remote commands on it.
type pool struct {
	*sshdial.Pool
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
	s, err := p.Session(ctx, user, addr)
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
	s, err := p.Session(ctx, user, addr)
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
