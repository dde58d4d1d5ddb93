package kubestack

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Versions of the components, as pinned by tools/kubestack/go.mod and
// tools/kwok/go.mod.
const (
	KubernetesVersion = "v1.34.2" // kube-apiserver, kube-controller-manager, kube-scheduler
	EtcdVersion       = "v3.6.4"
	KwokVersion       = "v0.7.0"
)

// Tool modules (relative to the repository root) and the names their cached
// binaries get under testenv.CacheDir()/bin. The version is in the name
// because the ldflags below are not part of testenv's cache key.
const (
	kubestackModule = "tools/kubestack"
	kwokModule      = "tools/kwok"
	kubestackName   = "kubestack-" + KubernetesVersion
	kwokName        = "kwok-" + KwokVersion
)

// kubestackLDFlags stamp the version the components report (kubectl version,
// /version, the version metric); without them they report v0.0.0-master.
var kubestackLDFlags = []string{
	"-s", "-w",
	"-X k8s.io/component-base/version.gitVersion=" + KubernetesVersion,
	"-X k8s.io/component-base/version.gitMajor=1",
	"-X k8s.io/component-base/version.gitMinor=34",
	"-X k8s.io/component-base/version.gitTreeState=clean",
}

var kwokLDFlags = []string{"-s", "-w"}

// Binaries are the paths of the two cached executables.
type Binaries struct {
	Kubestack string // multi-call: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
	Kwok      string
}

var (
	buildMu   sync.Mutex
	built     *Binaries
	buildErr  error
	buildTime time.Duration
)

// BuildBinaries builds (or finds in the cache) the kubestack and kwok
// binaries. A cold build takes minutes and ~2 GB of memory; a cache hit is
// a hash of the two small tool modules. Call it from a `make tools` step or
// from TestMain before m.Run, where go test's -timeout does not yet run.
// The result, error included, is remembered for the life of the process.
func BuildBinaries() error {
	_, err := buildBinaries()
	return err
}

func buildBinaries() (*Binaries, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if built != nil || buildErr != nil {
		return built, buildErr
	}
	start := time.Now()
	defer func() { buildTime = time.Since(start) }()
	root, err := testenv.FindRepoRoot()
	if err != nil {
		buildErr = err
		return nil, err
	}
	ks, err := testenv.BuildToolPath(filepath.Join(root, kubestackModule), ".", kubestackName, kubestackLDFlags...)
	if err != nil {
		buildErr = fmt.Errorf("build %s: %w", kubestackModule, err)
		return nil, buildErr
	}
	kw, err := testenv.BuildToolPath(filepath.Join(root, kwokModule), ".", kwokName, kwokLDFlags...)
	if err != nil {
		buildErr = fmt.Errorf("build %s: %w", kwokModule, err)
		return nil, buildErr
	}
	built = &Binaries{Kubestack: ks, Kwok: kw}
	return built, nil
}

// binaries returns the built binaries, or reports them unavailable: a test
// failure under GRAYLANE_INTEGRATION=1, a skip otherwise.
func binaries(t testing.TB) *Binaries {
	t.Helper()
	b, err := buildBinaries()
	if err != nil {
		testenv.Unavailable(t, "kubestack binaries: %v", err)
	}
	t.Logf("kubestack: binaries ready after %v (kubestack=%s kwok=%s)", buildTime.Round(time.Millisecond), b.Kubestack, b.Kwok)
	return b
}
