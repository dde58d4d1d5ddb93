package nginxtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Options tune the private nginx.
type Options struct {
	// HTTP is extra configuration placed inside http { } before the include
	// of IncludeDir/*.conf.
	HTTP string
	// WorkerProcesses defaults to 2.
	WorkerProcesses int
}

// Server is a running private nginx.
type Server struct {
	// Binary is the nginx executable.
	Binary string
	// Prefix is the -p directory; ConfFile the -c main configuration.
	Prefix, ConfFile string
	// PIDFile holds the master's pid; ErrorLog is nginx's error log.
	PIDFile, ErrorLog string
	// IncludeDir is included inside http { } as IncludeDir/*.conf.
	IncludeDir string
	// PingAddr serves GET /__ping with 204 (the harness's readiness probe).
	PingAddr string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// ModulesDir holds Debian's dynamic nginx modules; the private nginx loads
// the NDK and ngx_http_lua_module from it.
const ModulesDir = "/usr/lib/nginx/modules"

// Start runs a private nginx and stops it when the test ends. A missing
// nginx or Lua module is reported with testenv.Unavailable.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	testenv.AssertIntegrationTest(t, "nginx")
	bin := testenv.LookPath(t, "nginx")
	for _, m := range []string{"ndk_http_module.so", "ngx_http_lua_module.so"} {
		if _, err := os.Stat(filepath.Join(ModulesDir, m)); err != nil {
			testenv.Unavailable(t, "nginx module %s (apt-get install libnginx-mod-http-lua): %v", m, err)
		}
	}
	dir := t.TempDir()
	s := &Server{
		Binary:     bin,
		Prefix:     dir,
		ConfFile:   filepath.Join(dir, "conf", "nginx.conf"),
		PIDFile:    filepath.Join(dir, "logs", "nginx.pid"),
		ErrorLog:   filepath.Join(dir, "logs", "error.log"),
		IncludeDir: filepath.Join(dir, "graylane"),
		PingAddr:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		done:       make(chan struct{}),
	}
	for _, d := range []string{"conf", "logs", "tmp", "graylane"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.ConfFile, []byte(s.mainConf(opts)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, "-p", dir+"/", "-c", s.ConfFile)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		testenv.Unavailable(t, "start nginx: %v", err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error log tail (%s):\n%s", s.ErrorLog, s.LogTail(40))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stop nginx: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.waitPing(ctx); err != nil {
		testenv.Unavailable(t, "nginx did not come up: %v\n%s\n%s", err, out.String(), s.LogTail(20))
	}
	return s
}

func (s *Server) mainConf(opts Options) string {
	workers := opts.WorkerProcesses
	if workers == 0 {
		workers = 2
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers as root can read the test's private temp directories.
		user = "user root;\n"
	}
	return fmt.Sprintf(`# Private nginx for a graylane test (nginxtest).
# graylane's nginx files decide in Lua (Debian: libnginx-mod-http-lua).
load_module %s/ndk_http_module.so;
load_module %s/ngx_http_lua_module.so;
%sdaemon off;
master_process on;
worker_processes %d;
pid %s;
error_log %s info;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %s/tmp/body;
    proxy_temp_path %s/tmp/proxy;
    fastcgi_temp_path %s/tmp/fastcgi;
    uwsgi_temp_path %s/tmp/uwsgi;
    scgi_temp_path %s/tmp/scgi;
    server {
        listen %s;
        location = /__ping { return 204; }
    }
%s
    include %s/*.conf;
}
`, ModulesDir, ModulesDir, user, workers, s.PIDFile, s.ErrorLog, s.Prefix, s.Prefix, s.Prefix, s.Prefix, s.Prefix, s.PingAddr, opts.HTTP, s.IncludeDir)
}

func (s *Server) waitPing(ctx context.Context) error {
	c := &http.Client{Timeout: time.Second}
	err := testenv.Poll(ctx, func() error {
		select {
		case <-s.done:
			return testenv.Stop(fmt.Errorf("nginx exited: %v", s.err))
		default:
		}
		resp, err := c.Get("http://" + s.PingAddr + "/__ping")
		if err != nil {
			return fmt.Errorf("no answer on %s: %w", s.PingAddr, err)
		}
		resp.Body.Close()
		return testenv.Check(resp.StatusCode == http.StatusNoContent, "%s answers %s", s.PingAddr, resp.Status)
	})
	return err
}

// PID returns the master's pid.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Args returns the -p/-c arguments that address this nginx, for `nginx -t`
// or `nginx -s reload`.
func (s *Server) Args() []string { return []string{"-p", s.Prefix + "/", "-c", s.ConfFile} }

// Reload validates the configuration and signals a graceful reload.
func (s *Server) Reload(t testing.TB) {
	t.Helper()
	for _, args := range [][]string{{"-t"}, {"-s", "reload"}} {
		out, err := exec.Command(s.Binary, append(s.Args(), args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nginx %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Running reports whether the master process is still alive.
func (s *Server) Running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Stop shuts nginx down by its pid: SIGQUIT (graceful), then SIGTERM after
// 5s, then SIGKILL after 10s. It is safe to call twice.
func (s *Server) Stop() error {
	if !s.Running() {
		return nil
	}
	pid := s.cmd.Process.Pid
	steps := []struct {
		sig   syscall.Signal
		after time.Duration
	}{{syscall.SIGQUIT, 5 * time.Second}, {syscall.SIGTERM, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}}
	for _, st := range steps {
		if err := syscall.Kill(pid, st.sig); err != nil {
			// Already gone: wait for Wait to notice.
			select {
			case <-s.done:
				return nil
			case <-time.After(5 * time.Second):
				return fmt.Errorf("signal nginx master %d: %w", pid, err)
			}
		}
		select {
		case <-s.done:
			return nil
		case <-time.After(st.after):
		}
	}
	select {
	case <-s.done:
		return nil
	default:
		return fmt.Errorf("nginx master %d did not exit", pid)
	}
}

// LogTail returns the last n lines of the error log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.ErrorLog)
	if err != nil {
		return "(no error log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// MasterPIDFromFile reads the pid file nginx wrote.
func (s *Server) MasterPIDFromFile() (int, error) {
	b, err := os.ReadFile(s.PIDFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
