package polaris

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Version is the Polaris release tools/polaris/go.mod pins.
const Version = "v1.18.1"

const (
	// toolModule is the wrapper module, relative to the repository root.
	toolModule = "tools/polaris"
	// binaryName is the cached binary's name under testenv.CacheDir()/bin
	// (testenv appends a hash of the wrapper module).
	binaryName = "polaris-server-" + Version
	// modulePath is the upstream module whose release/conf is copied.
	modulePath = "github.com/polarismesh/polaris"
)

var (
	buildMu   sync.Mutex
	buildBin  string
	buildConf string
	buildErr  error
	buildTime time.Duration
)

// BuildBinary builds (or finds in the cache) the Polaris server binary and
// returns its path. A cold build takes about 1.5-3.5 minutes and ~650 MB of
// memory on 2 cores; a cache hit costs a hash of the small wrapper module.
// Call it from a `make tools` step (go run ./testsupport/polaris/prebuild) or
// from TestMain, where go test's -timeout does not yet run. The result,
// error included, is remembered for the life of the process.
func BuildBinary() (string, error) {
	bin, _, err := build()
	return bin, err
}

// build returns the binary and the upstream release/conf directory.
func build() (bin, conf string, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildBin != "" || buildErr != nil {
		return buildBin, buildConf, buildErr
	}
	start := time.Now()
	defer func() { buildTime = time.Since(start) }()
	root, err := testenv.FindRepoRoot()
	if err != nil {
		buildErr = err
		return "", "", err
	}
	modDir := filepath.Join(root, toolModule)
	bin, err = testenv.BuildToolPath(modDir, ".", binaryName)
	if err != nil {
		buildErr = fmt.Errorf("build %s: %w", toolModule, err)
		return "", "", buildErr
	}
	conf, err = releaseConf(modDir)
	if err != nil {
		buildErr = err
		return "", "", err
	}
	buildBin, buildConf = bin, conf
	return bin, conf, nil
}

// releaseConf locates polaris' release/conf in the module cache (the build
// has downloaded the module).
func releaseConf(modDir string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", modulePath)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("locate %s in the module cache: %w", modulePath, err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "release", "conf")
	if _, err := os.Stat(filepath.Join(dir, "polaris-server.yaml")); err != nil {
		return "", fmt.Errorf("polaris release conf: %w", err)
	}
	return dir, nil
}
