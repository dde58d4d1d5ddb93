package process

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/spec"
)

// proc is one running process of an instance: a child this Backend started,
// or one adopted from an earlier graylane.
type proc struct {
	rec     record
	adopted bool
	exited  chan struct{} // closed when the process is gone
	exitMsg string        // set before exited is closed
}

// identify checks that rec's PID still runs rec's process: alive (not a
// zombie), started at the recorded time and running the recorded argv.
func identify(rec record) (procStat, error) {
	st, err := readProcStat(rec.PID)
	if err != nil {
		return st, fmt.Errorf("pid %d is not running", rec.PID)
	}
	if st.state == 'Z' || st.state == 'X' {
		return st, fmt.Errorf("pid %d has exited", rec.PID)
	}
	if rec.StartTicks != 0 && st.startTicks != rec.StartTicks {
		return st, fmt.Errorf("pid %d was reused by another process", rec.PID)
	}
	argv, err := readCmdline(rec.PID)
	if err != nil {
		return st, fmt.Errorf("pid %d: %v", rec.PID, err)
	}
	if !slices.Equal(argv, rec.Argv) {
		return st, fmt.Errorf("pid %d runs %q, not the recorded %q", rec.PID, argv, rec.Argv)
	}
	return st, nil
}

// alive reports whether the process is still the recorded one.
func (p *proc) alive() bool {
	_, err := identify(p.rec)
	return err == nil
}

// signal sends sig to the instance's process group (its own, see
// Setpgid), or to the process alone if it left the group. An adopted
// process is identified again first, so a reused PID is never signalled.
func (p *proc) signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	st, err := identify(p.rec)
	if err != nil {
		return nil // already gone
	}
	target := p.rec.PID
	if st.pgid == p.rec.PID {
		target = -p.rec.PID
	}
	if err := syscall.Kill(target, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("signal %s to pid %d: %w", sig, p.rec.PID, err)
	}
	return nil
}

// watchAdopted closes p.exited when the adopted process is gone. It is not
// graylane's child, so it cannot be waited for: it is polled.
func (p *proc) watchAdopted(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !p.alive() {
				p.exitMsg = "exited"
				close(p.exited)
				return
			}
		}
	}
}

// startSpec is everything needed to start one instance.
type startSpec struct {
	rec      record // ID, App, Version, Slot, Restarts, Log filled
	pb       *spec.ProcessBackend
	host     string
	recFile  string
	reserved func(port int) bool // ports taken by other instances
}

// dialHost returns the host graylane uses to reach instances bound to host.
func dialHost(host string) string {
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return host
	case ip.IsUnspecified() && ip.To4() != nil:
		return "127.0.0.1"
	case ip.IsUnspecified():
		return "::1"
	}
	return host
}

// freePort finds a port on host that is free now and not reserved.
func freePort(host string, reserved func(int) bool) (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free port on %s: %w", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if reserved == nil || !reserved(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port on %s: every port offered is reserved", host)
}

// startProcess renders the command, records the intent, starts the process
// in its own process group with its output appended to its log file, and
// records its PID. The returned proc's exited channel closes when the
// child exits.
func startProcess(s startSpec) (*proc, error) {
	port, err := freePort(s.host, s.reserved)
	if err != nil {
		return nil, err
	}
	rec := s.rec
	rec.Port = port
	bindAddr := net.JoinHostPort(s.host, strconv.Itoa(port))
	rec.Addr = net.JoinHostPort(dialHost(s.host), strconv.Itoa(port))
	data := spec.TemplateData{App: rec.App, Version: rec.Version, Addr: bindAddr, Port: port, Slot: rec.Slot, InstanceID: rec.ID}
	rec.Argv = make([]string, len(s.pb.Command))
	for i, arg := range s.pb.Command {
		if rec.Argv[i], err = spec.Render(arg, data); err != nil {
			return nil, fmt.Errorf("render command[%d]: %w", i, err)
		}
	}
	if rec.Dir, err = spec.Render(s.pb.Dir, data); err != nil {
		return nil, fmt.Errorf("render dir: %w", err)
	}
	env := inheritedEnv(os.Environ())
	keys := make([]string, 0, len(s.pb.Env))
	for k := range s.pb.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := spec.Render(s.pb.Env[k], data)
		if err != nil {
			return nil, fmt.Errorf("render env %s: %w", k, err)
		}
		env = append(env, k+"="+v)
	}
	rec.Nonce = randid.Hex(8)
	env = append(env, rec.marker())

	if err := rotateLog(rec.Log, MaxLogSize); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(rec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s graylane: starting %s: %q\n", time.Now().Format(time.RFC3339Nano), rec.ID, rec.Argv)

	// Intent first: should graylane die during the fork, the next one finds
	// the process by its environment marker.
	rec.StartedAt = time.Now().UTC()
	if err := writeJSON(s.recFile, InstanceKind(), rec); err != nil {
		return nil, fmt.Errorf("record instance: %w", err)
	}
	cmd := exec.Command(rec.Argv[0], rec.Argv[1:]...)
	cmd.Dir = rec.Dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf // files, not pipes: the instance outlives graylane
	// Its own process group: a terminal's signal to graylane does not reach
	// it, and stopping it signals everything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		removeFile(s.recFile)
		fmt.Fprintf(logf, "%s graylane: start failed: %v\n", time.Now().Format(time.RFC3339Nano), err)
		return nil, fmt.Errorf("start %q: %w", rec.Argv, err)
	}
	rec.PID = cmd.Process.Pid
	if st, err := readProcStat(rec.PID); err == nil {
		rec.StartTicks = st.startTicks
	}
	p := &proc{rec: rec, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if err != nil {
			p.exitMsg = "exited: " + err.Error()
		} else {
			p.exitMsg = "exited: status 0"
		}
		close(p.exited)
	}()
	if err := writeJSON(s.recFile, InstanceKind(), rec); err != nil {
		// Unrecorded, it could be started twice after a crash: stop it.
		syscall.Kill(-rec.PID, syscall.SIGKILL)
		<-p.exited
		removeFile(s.recFile)
		return nil, fmt.Errorf("record pid %d: %w", rec.PID, err)
	}
	fmt.Fprintf(logf, "%s graylane: %s has pid %d\n", time.Now().Format(time.RFC3339Nano), rec.ID, rec.PID)
	return p, nil
}

// inheritedEnv is the part of graylane's environment an instance inherits:
// all but GRAYLANE_* variables, graylane's own configuration, which can
// hold API tokens and the passwords of config centres. An instance that
// needs one gets it through the spec's env.
func inheritedEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "GRAYLANE_") {
			out = append(out, kv)
		}
	}
	return out
}

// MaxLogSize is the size above which an instance's log is rotated when
// the instance (re)starts: it becomes {log}.1, replacing the previous one.
// Instances write straight into the file (they outlive graylane), so a log
// is not cut while its instance runs.
const MaxLogSize = 64 << 20

// rotateLog renames path to path.1 if it is larger than max.
func rotateLog(path string, max int64) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() <= max {
		return nil
	}
	if err := os.Rename(path, path+".1"); err != nil {
		return fmt.Errorf("rotate log %s: %w", path, err)
	}
	return nil
}
