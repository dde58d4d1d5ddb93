package graylanetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/graylane/graylane/testsupport/testenv"
)

// PreviousRelease is the commit upgrade tests run as "the release before
// this one": the newest commit of main before graylane's records carried
// schema versions (docs/upgrades.md). Its records are version 0 of every
// kind, and it neither advertises itself nor checks versions.
const PreviousRelease = "e493939edf0cab9273071697dc21323a901cdf88"

// ReleaseBinaries builds graylane and demoapp as they were at commit (a
// commit of this repository: git archive of it, built with the module
// cache) into $GRAYLANE_CACHE/release/<commit>/, once per commit, and
// returns that directory. A commit missing from the clone (a shallow CI
// checkout) is fetched from the clone's origin first; if that fails too,
// the test fails naming it.
func ReleaseBinaries(t testing.TB, commit string) string {
	t.Helper()
	testenv.AssertIntegrationTest(t, "graylane of an earlier release")
	dir, err := releaseBinaries(testenv.RepoRoot(t), commit)
	if err != nil {
		t.Fatalf("build graylane at %s: %v", commit, err)
	}
	return dir
}

// BuildRelease is ReleaseBinaries outside a test (make tools, through
// ./testsupport/graylanetest/prebuild): it builds graylane and demoapp as
// they were at commit, from the clone at root, into the cache once, and
// returns the directory.
func BuildRelease(root, commit string) (string, error) { return releaseBinaries(root, commit) }

func releaseBinaries(root, commit string) (string, error) {
	out := filepath.Join(testenv.CacheDir(), "release", commit)
	done := filepath.Join(out, ".built")
	if _, err := os.Stat(done); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(out, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", out, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(done); err == nil {
		return out, nil // built by another test binary while we waited
	}
	if err := haveCommit(root, commit); err != nil {
		return "", err
	}
	src, err := os.MkdirTemp("", "graylane-release-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	archive := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", root, commit, src)
	if b, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s: %v %s", commit, err, b)
	}
	for _, p := range []string{"graylane", "demoapp"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=release-"+commit[:min(12, len(commit))],
			"-o", filepath.Join(out, p), "./cmd/"+p)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/%s at %s: %v\n%s", p, commit, err, strings.TrimSpace(string(b)))
		}
	}
	return out, os.WriteFile(done, []byte(commit+"\n"), 0o644)
}

// haveCommit makes sure commit is in the clone at root: a shallow clone
// (as CI checkouts often are) is deepened from its origin, or the commit
// alone fetched, before giving up with an error that names it.
func haveCommit(root, commit string) error {
	has := func() bool {
		return exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run() == nil
	}
	if has() {
		return nil
	}
	var tried []string
	for _, args := range [][]string{
		{"fetch", "--quiet", "--unshallow", "origin"},
		{"fetch", "--quiet", "origin", commit},
	} {
		b, err := exec.Command("git", append([]string{"-C", root}, args...)...).CombinedOutput()
		if has() {
			return nil
		}
		tried = append(tried, fmt.Sprintf("git %s: %v %s", strings.Join(args, " "), err, strings.TrimSpace(string(b))))
	}
	return fmt.Errorf("commit %s is not in the clone at %s and could not be fetched (a shallow checkout without its origin? clone with the full history): %s",
		commit, root, strings.Join(tried, "; "))
}
