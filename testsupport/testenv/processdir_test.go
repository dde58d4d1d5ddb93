package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSweepProcessDirs(t *testing.T) {
	root := t.TempDir()
	const prefix = "tool-bin-"
	// No process has this pid: Linux's pid_max is at most 2^22.
	const deadPID = 1 << 30
	dirs := map[string]bool{ // name -> kept
		prefix + strconv.Itoa(deadPID) + "-123":     false,
		prefix + strconv.Itoa(os.Getpid()) + "-456": true, // this process
		prefix + "1-789":                        true, // pid 1 is alive
		prefix + "nopid":                        true, // not ProcessTempDir's
		"other-" + strconv.Itoa(deadPID) + "-1": true, // another prefix
	}
	for name := range dirs {
		if err := os.MkdirAll(filepath.Join(root, name, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sweepProcessDirs(root, prefix)
	for name, kept := range dirs {
		_, err := os.Stat(filepath.Join(root, name))
		if got := err == nil; got != kept {
			t.Errorf("%s: kept = %v, want %v (stat: %v)", name, got, kept, err)
		}
	}
}

func TestProcessTempDirNamesItsOwner(t *testing.T) {
	dir, err := ProcessTempDir("testenv-processdir-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	pid, ok := ownerPID(filepath.Base(dir), "testenv-processdir-")
	if !ok || pid != os.Getpid() {
		t.Fatalf("ProcessTempDir made %s: owner %d (%v), want %d", dir, pid, ok, os.Getpid())
	}
}
