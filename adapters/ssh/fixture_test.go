package ssh_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/ssh"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/sshdtest"
	"github.com/graylane/graylane/traffic"
)

// fixture is N sshd hosts, the hostapp binary, artifacts for a few
// versions and a Backend.
type fixture struct {
	t        testing.TB
	cluster  *sshdtest.Cluster
	hostapp  string
	artDir   string
	appAddrs []string
	backend  *ssh.Backend
}

type fixtureOpts struct {
	hosts int
	// extra YAML lines under backend.ssh (indented by the caller with 4 spaces)
	extra string
	// per-host extra YAML (appended inside the host's mapping)
	hostExtra func(i int) string
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	c := sshdtest.Start(t, o.hosts)
	f := &fixture{t: t, cluster: c, hostapp: sshdtest.BuildHostApp(t), artDir: t.TempDir()}
	for _, h := range c.Hosts {
		f.appAddrs = append(f.appAddrs, fmt.Sprintf("%s:%d", h.IP, sshdtest.FreePortOn(t, h.IP)))
	}
	// Stop every app process the hosts started, by pid.
	t.Cleanup(func() {
		for _, h := range c.Hosts {
			exec.Command(f.hostapp, "stop", "-pidfile", filepath.Join(h.Root, "app.pid")).Run()
		}
	})
	b, err := ssh.New(ssh.Config{KeyFile: c.KeyFile, KnownHostsFiles: []string{c.KnownHosts}, WorkDir: t.TempDir(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f.backend = b
	return f
}

func testLogger() *slog.Logger {
	if os.Getenv("GRAYLANE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// artifact writes a version's build: VERSION, a large file that does not
// change between versions, and files passed in.
func (f *fixture) artifact(version string, files map[string]string) {
	f.t.Helper()
	dir := filepath.Join(f.artDir, version)
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	write("VERSION", version+"\n")
	write("static/big.bin", strings.Repeat("graylane static asset\n", 20000))
	for k, v := range files {
		write(k, v)
	}
}

// release builds the spec of app demo at version for the fixture's hosts.
func (f *fixture) release(version string, o fixtureOpts) *spec.Release {
	f.t.Helper()
	var hosts strings.Builder
	for i, h := range f.cluster.Hosts {
		fmt.Fprintf(&hosts, "      - address: %q\n        name: %s\n        appAddr: %q\n        root: %q\n", h.Addr, h.Name, f.appAddrs[i], h.Root)
		if i == 0 {
			hosts.WriteString("        tags: [canary]\n")
		}
		if o.hostExtra != nil {
			hosts.WriteString(o.hostExtra(i))
		}
	}
	doc := fmt.Sprintf(`
app: demo
version: %s
strategy: {type: rolling, maxUnavailable: 1}
health: {path: /healthz, interval: 100ms, timeout: 1s}
backend:
  type: ssh
  ssh:
    user: %s
    artifact: %q
    restart: [%q, restart, -pidfile, "{{.Root}}/app.pid", -listen, "{{.AppAddr}}", -dir, "{{.Root}}/current", -log, "{{.Root}}/app.log"]
    stop: [%q, stop, -pidfile, "{{.Root}}/app.pid"]
    commandTimeout: 20s
    healthTimeout: 5s
%s    hosts:
%s`, version, f.cluster.User, f.artDir+"/{{.Version}}", f.hostapp, f.hostapp, o.extra, hosts.String())
	rel, err := spec.Parse([]byte(doc))
	if err != nil {
		f.t.Fatalf("spec: %v\n%s", err, doc)
	}
	return rel
}

// current reads a host's current link from its filesystem (the hosts are
// directories on this machine).
func (f *fixture) current(i int) string {
	l, err := os.Readlink(filepath.Join(f.cluster.Hosts[i].Root, "current"))
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(l, "releases/")
}

func (f *fixture) currents() []string {
	var out []string
	for i := range f.cluster.Hosts {
		out = append(out, f.current(i))
	}
	return out
}

func (f *fixture) deploy(ctx context.Context, rel *spec.Release, want traffic.Replicas) *ssh.Report {
	f.t.Helper()
	r, err := f.backend.Deploy(ctx, rel, want)
	if err != nil {
		f.t.Fatalf("deploy %v: %v", want, err)
	}
	return r
}

func countVersions(insts []adapters.Instance) map[string]int {
	m := map[string]int{}
	for _, in := range insts {
		if in.Ready {
			m[in.Version]++
		}
	}
	return m
}
