package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/ssh"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

func TestFirstDeployUpgradeReuseAndPrune(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, fixtureOpts{hosts: 2})
	ctx := context.Background()
	o := fixtureOpts{
		extra: "    keepReleases: 3\n    linkedFiles: [config/app.env]\n" +
			"    hooks:\n      before: [touch, \"{{.ReleaseDir}}/before-$(echo injected)\"]\n      after: [touch, \"{{.Root}}/after-{{.Version}}\"]\n",
	}
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		f.artifact(v, nil)
	}
	for _, h := range f.cluster.Hosts {
		os.MkdirAll(filepath.Join(h.Root, "shared", "config"), 0o755)
		os.WriteFile(filepath.Join(h.Root, "shared", "config", "app.env"), []byte("HOST="+h.Name+"\n"), 0o644)
	}
	if got, err := f.backend.Observe(ctx, "demo"); err != nil || len(got) != 0 {
		t.Fatalf("Observe before any Apply = %v, %v; want nothing", got, err)
	}
	rep := f.deploy(ctx, f.release("v1", o), traffic.Replicas{"v1": 2})
	if got := f.currents(); !reflect.DeepEqual(got, []string{"v1", "v1"}) {
		t.Fatalf("currents after first deploy = %v", got)
	}
	for _, r := range rep.Hosts {
		if r.Uploaded != 2 || r.Reused != 0 {
			t.Errorf("first deploy to %s uploaded %d, reused %d; want 2 and 0", r.Host, r.Uploaded, r.Reused)
		}
	}
	insts, err := f.backend.Observe(ctx, "demo")
	if err != nil || !reflect.DeepEqual(countVersions(insts), map[string]int{"v1": 2}) {
		t.Fatalf("Observe = %+v, %v", insts, err)
	}
	for _, v := range []string{"v2", "v3", "v4"} {
		rep = f.deploy(ctx, f.release(v, o), traffic.Replicas{v: 2})
		for _, r := range rep.Hosts {
			// Only VERSION changed: static/big.bin is copied on the host.
			if r.Uploaded != 1 || r.Reused != 1 {
				t.Errorf("%s to %s uploaded %d, reused %d; want 1 and 1", v, r.Host, r.Uploaded, r.Reused)
			}
		}
	}
	for i, h := range f.cluster.Hosts {
		if c := f.current(i); c != "v4" {
			t.Fatalf("%s current = %q", h.Name, c)
		}
		ents, _ := os.ReadDir(filepath.Join(h.Root, "releases"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !reflect.DeepEqual(names, []string{"v2", "v3", "v4"}) {
			t.Errorf("%s releases = %v, want the last 3", h.Name, names)
		}
		rd := filepath.Join(h.Root, "releases", "v4")
		if l, err := os.Readlink(filepath.Join(rd, "config", "app.env")); err != nil || l != filepath.Join(h.Root, "shared", "config", "app.env") {
			t.Errorf("%s linked file = %q, %v", h.Name, l, err)
		}
		if b, err := os.ReadFile(filepath.Join(h.Root, "current", "static", "big.bin")); err != nil || len(b) != 20000*22 {
			t.Errorf("%s big.bin: %d bytes, %v", h.Name, len(b), err)
		}
		if _, err := os.Stat(filepath.Join(rd, ssh.ManifestName)); err != nil {
			t.Errorf("%s: no manifest: %v", h.Name, err)
		}
		// The hook's argument reached the host literally: no shell ran it.
		if _, err := os.Stat(filepath.Join(rd, "before-$(echo injected)")); err != nil {
			t.Errorf("%s: before hook did not run with its literal argument: %v", h.Name, err)
		}
		if _, err := os.Stat(filepath.Join(h.Root, "after-v4")); err != nil {
			t.Errorf("%s: after hook did not run: %v", h.Name, err)
		}
	}
	// Apply again with the same arguments: nothing moves.
	rep = f.deploy(ctx, f.release("v4", o), traffic.Replicas{"v4": 2})
	if len(rep.Hosts) != 0 {
		t.Fatalf("repeated Apply moved %+v", rep.Hosts)
	}
	// Scale to zero stops the app and removes current.
	f.deploy(ctx, f.release("v4", o), traffic.Replicas{})
	if got := f.currents(); !reflect.DeepEqual(got, []string{"", ""}) {
		t.Fatalf("currents after scaling to zero = %v", got)
	}
	if insts, err := f.backend.Observe(ctx, "demo"); err != nil || len(insts) != 0 {
		t.Fatalf("Observe after scaling to zero = %+v, %v", insts, err)
	}
	for _, h := range f.cluster.Hosts {
		if _, err := os.Stat(filepath.Join(h.Root, "app.pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: app still running after stop (%v)", h.Name, err)
		}
	}
}

func TestRollbackTimedPerHost(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, fixtureOpts{hosts: 4})
	ctx := context.Background()
	f.artifact("v1", nil)
	f.artifact("v2", nil)
	f.deploy(ctx, f.release("v1", fixtureOpts{}), traffic.Replicas{"v1": 4})
	f.deploy(ctx, f.release("v2", fixtureOpts{}), traffic.Replicas{"v2": 4})
	// The artifact is gone: a rollback must not need it.
	os.RemoveAll(filepath.Join(f.artDir, "v1"))
	start := time.Now()
	rep := f.deploy(ctx, f.release("v1", fixtureOpts{}), traffic.Replicas{"v1": 4})
	total := time.Since(start)
	if len(rep.Hosts) != 4 {
		t.Fatalf("rollback moved %d hosts, want 4", len(rep.Hosts))
	}
	for _, r := range rep.Hosts {
		d := r.Switch + r.Health
		t.Logf("rollback %s (batch %d): switch+restart %v + health %v = %v", r.Host, r.Batch, r.Switch.Round(time.Microsecond), r.Health.Round(time.Microsecond), d.Round(time.Microsecond))
		if r.Uploaded != 0 || r.Stage != 0 {
			t.Errorf("rollback of %s uploaded %d files", r.Host, r.Uploaded)
		}
		if d > time.Second {
			t.Errorf("rollback of %s took %v, goal < 1s", r.Host, d)
		}
	}
	t.Logf("rollback of 4 hosts, one at a time: %v", total)
	if got := f.currents(); !reflect.DeepEqual(got, []string{"v1", "v1", "v1", "v1"}) {
		t.Fatalf("currents after rollback = %v", got)
	}
	insts, err := f.backend.Observe(ctx, "demo")
	if err != nil || !reflect.DeepEqual(countVersions(insts), map[string]int{"v1": 4}) {
		t.Fatalf("Observe after rollback = %+v, %v", insts, err)
	}
}

func TestUnhealthyHostStopsTheRollout(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, fixtureOpts{hosts: 4})
	ctx := context.Background()
	f.artifact("v1", nil)
	f.artifact("v2", nil)
	// host1 gets per-host config that makes v2 unhealthy there.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "UNHEALTHY"), []byte("x"), 0o644)
	o := fixtureOpts{
		extra: "    healthTimeout: 1s\n",
		hostExtra: func(i int) string {
			if i == 1 {
				return fmt.Sprintf("        configDir: %q\n", bad)
			}
			return ""
		},
	}
	f.deploy(ctx, f.release("v1", fixtureOpts{extra: o.extra}), traffic.Replicas{"v1": 4})
	rel := f.release("v2", o)
	rel.Strategy.MaxUnavailable.Value = 2
	rep, err := f.backend.Deploy(ctx, rel, traffic.Replicas{"v2": 4})
	if !errors.Is(err, ssh.ErrHealthCheck) {
		t.Fatalf("err = %v, want ErrHealthCheck", err)
	}
	var herr *ssh.HostError
	if !errors.As(err, &herr) || herr.Host != "host1" {
		t.Fatalf("err = %v, want a HostError naming host1", err)
	}
	if !strings.Contains(err.Error(), "503") {
		t.Errorf("error does not carry the health check's answer: %v", err)
	}
	// Canary host0 first (batch 0), then host1 and host2 together; host3's
	// batch never started.
	if got := f.currents(); !reflect.DeepEqual(got, []string{"v2", "v2", "v2", "v1"}) {
		t.Fatalf("currents = %v, want [v2 v2 v2 v1]", got)
	}
	batches := map[string]int{}
	for _, r := range rep.Hosts {
		batches[r.Host] = r.Batch
	}
	if batches["host0"] != 0 || batches["host1"] != 1 || batches["host2"] != 1 {
		t.Errorf("batches = %v", batches)
	}
	insts, err := f.backend.Observe(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		wantReady := in.Meta["host"] != "host1"
		if in.Ready != wantReady {
			t.Errorf("%s ready = %v (%s)", in.ID, in.Ready, in.Message)
		}
	}
	if got := countVersions(insts); !reflect.DeepEqual(got, map[string]int{"v1": 1, "v2": 2}) {
		t.Errorf("ready per version = %v", got)
	}
}

func TestChangedOrUnknownHostKeyIsRefused(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, fixtureOpts{hosts: 3})
	ctx := context.Background()
	f.artifact("v1", nil)
	f.artifact("v2", nil)
	f.deploy(ctx, f.release("v1", fixtureOpts{}), traffic.Replicas{"v1": 3})
	f.backend.Close() // drop cached connections: the next step dials again
	f.cluster.RegenerateHostKey(t, 2)
	_, err := f.backend.Deploy(ctx, f.release("v2", fixtureOpts{}), traffic.Replicas{"v2": 3})
	if !errors.Is(err, ssh.ErrHostKeyChanged) || !strings.Contains(err.Error(), "host2") {
		t.Fatalf("err = %v, want ErrHostKeyChanged naming host2", err)
	}
	if got := f.currents(); !reflect.DeepEqual(got, []string{"v1", "v1", "v1"}) {
		t.Fatalf("a host moved despite the changed key: %v", got)
	}
	// A known_hosts without host1 at all: unknown key.
	kh, _ := os.ReadFile(f.cluster.KnownHosts)
	var keep []string
	for _, l := range strings.Split(string(kh), "\n") {
		if l != "" && !strings.HasPrefix(l, "["+f.cluster.Hosts[1].IP+"]") {
			keep = append(keep, l)
		}
	}
	partial := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(partial, []byte(strings.Join(keep, "\n")+"\n"), 0o600)
	b2, err := ssh.New(ssh.Config{KeyFile: f.cluster.KeyFile, KnownHostsFiles: []string{partial}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	_, err = b2.Deploy(ctx, f.release("v2", fixtureOpts{}), traffic.Replicas{"v2": 3})
	if !errors.Is(err, ssh.ErrHostKeyUnknown) || !strings.Contains(err.Error(), "host1") {
		t.Fatalf("err = %v, want ErrHostKeyUnknown naming host1", err)
	}
}

func TestDeployLock(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, fixtureOpts{hosts: 2})
	ctx := context.Background()
	f.artifact("v1", nil)
	f.artifact("v2", nil)
	f.deploy(ctx, f.release("v1", fixtureOpts{}), traffic.Replicas{"v1": 2})
	// v2's before hook waits for a file, holding the deploy in progress.
	gate := filepath.Join(t.TempDir(), "go")
	o := fixtureOpts{extra: fmt.Sprintf("    hooks:\n      before: [sh, -c, 'touch \"$GRAYLANE_ROOT/waiting\"; while [ ! -e %s ]; do sleep 0.01; done']\n", gate)}
	rel := f.release("v2", o)
	done := make(chan error, 1)
	go func() { _, err := f.backend.Deploy(ctx, rel, traffic.Replicas{"v2": 2}); done <- err }()
	waiting := filepath.Join(f.cluster.Hosts[0].Root, "waiting")
	testenv.Eventually(t, 20*time.Second, "first deploy at its before hook", func() error {
		select {
		case err := <-done:
			t.Fatalf("first deploy ended early: %v", err)
		default:
		}
		_, err := os.Stat(waiting)
		return err
	})
	// Same process: the in-process lock refuses.
	if _, err := f.backend.Deploy(ctx, rel, traffic.Replicas{"v1": 1, "v2": 1}); !errors.Is(err, ssh.ErrLocked) {
		t.Fatalf("second deploy in the same process: %v, want ErrLocked", err)
	}
	// Another graylane process: the hosts' flock refuses.
	other, err := ssh.New(ssh.Config{KeyFile: f.cluster.KeyFile, KnownHostsFiles: []string{f.cluster.KnownHosts}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Deploy(ctx, rel, traffic.Replicas{"v1": 1, "v2": 1}); !errors.Is(err, ssh.ErrLocked) {
		t.Fatalf("deploy from another process: %v, want ErrLocked", err)
	}
	os.WriteFile(gate, nil, 0o644)
	if err := <-done; err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if got := f.currents(); !reflect.DeepEqual(got, []string{"v2", "v2"}) {
		t.Fatalf("currents = %v", got)
	}
	// The locks are released: the other process can deploy now.
	if _, err := other.Deploy(ctx, f.release("v1", fixtureOpts{}), traffic.Replicas{"v1": 2}); err != nil {
		t.Fatalf("deploy after the lock was released: %v", err)
	}
}

func TestObserveHasNoSideEffectsAndHonoursCancel(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, fixtureOpts{hosts: 2})
	ctx := context.Background()
	f.artifact("v1", nil)
	rel := f.release("v1", fixtureOpts{})
	f.deploy(ctx, rel, traffic.Replicas{"v1": 2})
	snapshot := func() string {
		var b strings.Builder
		for _, h := range f.cluster.Hosts {
			filepath.Walk(h.Root, func(p string, info os.FileInfo, err error) error {
				if err == nil && !strings.HasSuffix(p, "app.log") {
					fmt.Fprintf(&b, "%s %v %d\n", p, info.ModTime().UnixNano(), info.Size())
				}
				return nil
			})
		}
		return b.String()
	}
	before := snapshot()
	a, err1 := f.backend.Observe(ctx, "demo")
	c, err2 := f.backend.Observe(ctx, "demo")
	if err1 != nil || err2 != nil || !reflect.DeepEqual(a, c) || len(a) != 2 {
		t.Fatalf("Observe twice: %+v %v / %+v %v", a, err1, c, err2)
	}
	if after := snapshot(); after != before {
		t.Fatalf("Observe changed the hosts:\n%s\n---\n%s", before, after)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.backend.Observe(cctx, "demo"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Observe with a cancelled ctx: %v", err)
	}
	if err := f.backend.Apply(cctx, rel, traffic.Replicas{"v1": 1}, adapters.NoStep); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled ctx: %v", err)
	}
	if got := f.currents(); !reflect.DeepEqual(got, []string{"v1", "v1"}) {
		t.Fatalf("a cancelled Apply changed hosts: %v", got)
	}
}
