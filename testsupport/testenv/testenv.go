package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Unavailable reports that a real server a test needs is not available. Under
// GRAYLANE_INTEGRATION=1 that is a test failure; otherwise the test is
// skipped. Only integration tests may call it (AssertIntegrationTest), and
// those only run under GRAYLANE_INTEGRATION=1, so in practice it fails.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	AssertIntegrationTest(t, "a real server")
	msg := fmt.Sprintf(format, args...)
	if Integration() {
		t.Fatalf("required server unavailable (GRAYLANE_INTEGRATION=1): %s", msg)
	}
	t.Skipf("server unavailable (set GRAYLANE_INTEGRATION=1 to make this a failure): %s", msg)
}

// Require calls Unavailable when err is not nil.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	AssertIntegrationTest(t, what)
	if err != nil {
		Unavailable(t, "%s: %v", what, err)
	}
}

// LookPath finds a program (also in /usr/sbin, which is often not on PATH)
// or reports it unavailable.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	AssertIntegrationTest(t, name)
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	Unavailable(t, "%s not found on PATH or in /usr/sbin (make test-deps installs it)", name)
	return ""
}

// RepoRoot returns the root of the graylane module (the directory holding
// the top-level go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// FindRepoRoot finds the graylane module root: from this source file when
// its path is known (go test without -trimpath), else upwards from the
// working directory.
func FindRepoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isGraylaneRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the graylane repository root (go.mod of github.com/graylane/graylane)")
		}
		dir = parent
	}
}

func isGraylaneRoot(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == "github.com/graylane/graylane"
		}
	}
	return false
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// CacheDir is where built tools are kept between runs:
// $GRAYLANE_CACHE, else $XDG_CACHE_HOME/graylane, else ~/.cache/graylane.
func CacheDir() string {
	if d := os.Getenv("GRAYLANE_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "graylane")
	}
	return filepath.Join(os.TempDir(), "graylane-cache")
}

// ToolHash hashes every go.mod, go.sum and .go file under modDir, so a cached
// binary is rebuilt exactly when its sources or pinned versions change.
func ToolHash(modDir string) (string, error) {
	var files []string
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		n := d.Name()
		if n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go") || n == "versions.env" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		rel, _ := filepath.Rel(modDir, f)
		fmt.Fprintf(h, "%s\x00", rel)
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	fmt.Fprintf(h, "%s", runtime.Version())
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// BuildTool builds the main package pkg (relative to modDir, e.g. ".") of the
// nested module at modDir (relative to the repository root) into the cache
// and returns the binary's path. The binary is reused while the module's
// sources are unchanged; a file lock keeps parallel test binaries from
// building the same tool twice. Extra ldflags may be passed.
func BuildTool(t testing.TB, modDir, pkg, name string, ldflags ...string) string {
	t.Helper()
	AssertIntegrationTest(t, name)
	p, err := BuildToolPath(filepath.Join(RepoRoot(t), modDir), pkg, name, ldflags...)
	if err != nil {
		Unavailable(t, "build %s: %v", name, err)
	}
	return p
}

// BuildToolPath is BuildTool without a testing.TB, for TestMain and cmd use.
func BuildToolPath(absModDir, pkg, name string, ldflags ...string) (string, error) {
	hash, err := ToolHash(absModDir)
	if err != nil {
		return "", fmt.Errorf("hash tool module %s: %w", absModDir, err)
	}
	dir := filepath.Join(CacheDir(), "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name+"-"+hash)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	lock, err := os.OpenFile(out+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", out, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(out); err == nil {
		return out, nil // built by another process while we waited
	}
	tmp := out + ".tmp"
	args := []string{"build", "-C", absModDir, "-trimpath", "-o", tmp}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// Logger writes to t's log at level and above until the test ends; lines
// from background goroutines after that (clients calling back late) are
// dropped, as testing.T would panic on them.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
