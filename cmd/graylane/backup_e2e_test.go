package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestEndToEndBackupRestoreResumes follows docs/install.md's procedure:
// `graylane backup` while a canary waits at a manual pause, graylane
// stopped, its embedded etcd lost (the data directory's etcd/ removed),
// `graylane restore` into the fresh etcd, graylane started again. The
// canary is still paused at the same step with the same weights and the
// same instances (adopted, none started twice), and a promote finishes it.
func TestEndToEndBackupRestoreResumes(t *testing.T) {
	testenv.IntegrationTest(t)
	g := graylanetest.Start(t, graylanetest.Options{})
	bin := filepath.Join(g.Bin, "graylane")
	proxy := testenv.FreePort(t)
	steps := `  type: canary
  steps:
    - setWeight: 25
    - pause: {}
    - setWeight: 100
  scaleDownDelay: 1s`
	g.PutSpec("cart", releaseDoc("cart", "v1", proxy, steps))
	waitFor(t, g, "cart", 60*time.Second, "v1 healthy", healthyAt("v1"))
	ctx := context.Background()
	if err := g.Client().SetVersion(ctx, "cart", "v2"); err != nil {
		t.Fatal(err)
	}
	pausedAtStep1 := func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Step == 1 && v.Status.Weights["v2"] == 25 && v.Status.CanaryVersion == "v2"
	}
	before := waitFor(t, g, "cart", 60*time.Second, "canary paused at step 2", pausedAtStep1)
	pids := map[string]string{}
	for _, in := range before.Status.Instances {
		pids[in.ID] = in.Meta["pid"]
	}

	archive := filepath.Join(t.TempDir(), "graylane-backup.json")
	config := filepath.Join(g.Dir, "graylane.yaml")
	if out, err := exec.Command(bin, "backup", "--config", config, "-o", archive).CombinedOutput(); err != nil {
		t.Fatalf("graylane backup: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "backup: ") {
		t.Fatalf("graylane backup said: %s", out)
	}
	if st, err := os.Stat(archive); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("archive %v %v, want mode 0600", st, err)
	}

	g.Stop() // process.stopOnExit is off: the instances keep running
	etcdDir := filepath.Join(g.Dir, "data", "etcd")
	if err := os.RemoveAll(etcdDir); err != nil {
		t.Fatal(err)
	}
	restore := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"restore", "--config", config, "-i", archive}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := restore()
	if err != nil || !strings.Contains(out, "restore: ") {
		t.Fatalf("graylane restore: %v\n%s", err, out)
	}
	// a second restore into the now non-empty etcd is refused
	if out, err := restore(); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("restore into a non-empty etcd: %v\n%s", err, out)
	}

	g.Restart()
	after := waitFor(t, g, "cart", 60*time.Second, "the restored canary, still paused at step 2", func(v engine.AppView) bool {
		ready := 0
		for _, in := range v.Status.Instances {
			if in.Ready {
				ready++
			}
		}
		return pausedAtStep1(v) && ready == len(pids)
	})
	for _, in := range after.Status.Instances {
		if pids[in.ID] == "" || pids[in.ID] != in.Meta["pid"] {
			t.Fatalf("instance %s has pid %s after the restore, was %s: not adopted", in.ID, in.Meta["pid"], pids[in.ID])
		}
	}
	if _, err := g.Client().Command(ctx, "cart", rollout.CmdPromote); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "cart", 60*time.Second, "v2 healthy after promote", healthyAt("v2"))
	for id, n := range g.Starts("cart") {
		if n != 1 {
			t.Errorf("slot %s was started %d times", id, n)
		}
	}
}

// TestRestoreRefusesCorruptArchive: a damaged archive changes nothing.
func TestRestoreRefusesCorruptArchive(t *testing.T) {
	testenv.IntegrationTest(t)
	bin := filepath.Join(graylanetest.Binaries(t), "graylane")
	dir := t.TempDir()
	archive := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(archive, []byte(`{"format":"graylane-backup/v1","entries":[{"key":"/graylane/apps/a","value":"eA=="}],"sha256":"00"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "restore", "--data.dir", filepath.Join(dir, "data"), "-i", archive).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "corrupt") {
		t.Fatalf("restore of a corrupt archive: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "etcd")); !os.IsNotExist(err) {
		t.Fatalf("a corrupt archive created an etcd: %v", err)
	}
}
