package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// replica is one graylane process.
type replica struct {
	id     string
	dir    string
	api    string // http://127.0.0.1:port
	etcd   string // embedded etcd's client address ("" with an external etcd)
	cmd    *exec.Cmd
	exited chan struct{}
	logf   *os.File
}

// freePort asks the kernel for a free loopback port.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startReplica starts graylane with cfg merged over the harness' base
// config and waits until it answers /readyz.
func startReplica(ctx context.Context, bin, root, id string, cfg map[string]any) (*replica, error) {
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port := freePort()
	r := &replica{id: id, dir: dir, api: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
	base := map[string]any{
		"http": map[string]any{"addr": fmt.Sprintf("127.0.0.1:%d", port)},
		"data": map[string]any{"dir": filepath.Join(dir, "data")},
		"log":  map[string]any{"level": "info"},
		// webhook apps route nothing through the built-in proxy: keep it
		// inside graylane, so no proxy process outlives a killed replica
		"proxy": map[string]any{"mode": "embedded"},
	}
	if _, external := cfg["etcd"]; !external {
		r.etcd = fmt.Sprintf("127.0.0.1:%d", freePort())
		base["etcd"] = map[string]any{"embedded": map[string]any{"clientAddr": r.etcd, "peerAddr": fmt.Sprintf("127.0.0.1:%d", freePort())}}
	}
	merge(base, cfg)
	b, err := yaml.Marshal(base)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "graylane.yaml")
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		return nil, err
	}
	r.logf, err = os.Create(filepath.Join(dir, "graylane.log"))
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command(bin, "serve", "--config", conf)
	r.cmd.Dir = dir
	r.cmd.Stdout, r.cmd.Stderr = r.logf, r.logf
	r.cmd.Env = append(os.Environ(), "HOOK_SECRET="+hookSecret)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = r.cmd.Wait(); r.logf.Close(); close(r.exited) }()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("graylane %s exited during start-up; log in %s", id, r.logf.Name())
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
		if resp, err := http.Get(r.api + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.kill()
	return nil, fmt.Errorf("graylane %s not ready within 2 minutes; log in %s", id, r.logf.Name())
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func (r *replica) pid() int { return r.cmd.Process.Pid }

// kill sends SIGKILL and waits for the process to go.
func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// stop sends SIGTERM and waits.
func (r *replica) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.kill()
	}
}

// alive reports whether the process still runs.
func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// procStat is a process' CPU time and resident memory now.
type procStat struct {
	at  time.Time
	cpu time.Duration // user + system
	rss int64         // bytes
	// anon is the anonymous part of rss (heaps, stacks); the rest is
	// files mapped (the embedded etcd's database, the binary), pages the
	// kernel can drop and read again
	anon int64
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func readProc(pid int) (procStat, error) {
	st := procStat{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// the command name may hold spaces: fields start after the last ')'
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	sf, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer sf.Close()
	sc := bufio.NewScanner(sf)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			st.rss = kb << 10
		}
		if rest, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			st.anon = kb << 10
		}
	}
	return st, nil
}

// sampler keeps a process' peak RSS between resets.
type sampler struct {
	pid  int
	mu   sync.Mutex
	peak procStat // the sample with the highest rss
	last procStat
	stop chan struct{}
}

func newSampler(pid int) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				st, err := readProc(pid)
				if err != nil {
					continue
				}
				s.mu.Lock()
				s.last = st
				if st.rss > s.peak.rss {
					s.peak = st
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// resetPeak starts a new peak window and returns the previous peak
// ("RSS (anonymous …)").
func (s *sampler) resetPeak() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peak
	s.peak = s.last
	return p.String()
}

// String is the RSS with its anonymous part.
func (p procStat) String() string { return fmt.Sprintf("%s (anonymous %s)", mb(p.rss), mb(p.anon)) }

func (s *sampler) close() { close(s.stop) }

// cpuOver measures a process' CPU use (in cores) over a window, and its
// memory at the end of it.
func cpuOver(ctx context.Context, pid int, window time.Duration) (cores float64, end procStat, err error) {
	a, err := readProc(pid)
	if err != nil {
		return 0, procStat{}, err
	}
	select {
	case <-ctx.Done():
		return 0, procStat{}, ctx.Err()
	case <-time.After(window):
	}
	b, err := readProc(pid)
	if err != nil {
		return 0, procStat{}, err
	}
	return float64(b.cpu-a.cpu) / float64(b.at.Sub(a.at)), b, nil
}

// loadAvg returns the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
