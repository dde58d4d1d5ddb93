package helmtool

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/graylane/graylane/testsupport/testenv"
)

// HelmVersion is the helm.sh/helm/v4 version tools/helm/go.mod pins.
const HelmVersion = "v4.3.2"

const module = "tools/helm"

var (
	once     sync.Once
	path     string
	buildErr error
)

// Build builds (or finds in the cache) the graylane-helm binary and returns
// its path. A cold build takes a few minutes; the result, error included,
// is kept for the life of the process.
func Build() (string, error) {
	once.Do(func() {
		root, err := testenv.FindRepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		path, buildErr = testenv.BuildToolPath(filepath.Join(root, module), ".", "graylane-helm-"+HelmVersion, "-s", "-w")
	})
	return path, buildErr
}

// Binary returns the tool's path or reports it unavailable (a failure
// under GRAYLANE_INTEGRATION=1).
func Binary(t testing.TB) string {
	t.Helper()
	p, err := Build()
	if err != nil {
		testenv.Unavailable(t, "build %s: %v", module, err)
	}
	return p
}

// Options are the values and release settings of one run.
type Options struct {
	Name, Namespace string   // release (defaults graylane, graylane)
	ValueFiles      []string // -f
	Set             []string // --set key=value
	APIVersions     []string // --api-versions (template only)
	Strict          bool     // lint --strict
}

func (o Options) args() []string {
	var a []string
	if o.Name != "" {
		a = append(a, "--name", o.Name)
	}
	if o.Namespace != "" {
		a = append(a, "--namespace", o.Namespace)
	}
	for _, f := range o.ValueFiles {
		a = append(a, "-f", f)
	}
	for _, s := range o.Set {
		a = append(a, "--set", s)
	}
	return a
}

// Lint runs `graylane-helm lint CHART` and returns its output and error.
func Lint(t testing.TB, chart string, o Options) (string, error) {
	t.Helper()
	args := append([]string{"lint", chart}, o.args()...)
	if o.Strict {
		args = append(args, "--strict")
	}
	return run(t, args)
}

// Template renders the chart and returns the manifest, or the tool's error
// (stderr) as the error.
func Template(t testing.TB, chart string, o Options) (string, error) {
	t.Helper()
	args := append([]string{"template", chart}, o.args()...)
	for _, a := range o.APIVersions {
		args = append(args, "--api-versions", a)
	}
	return run(t, args)
}

func run(t testing.TB, args []string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(Binary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("graylane-helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()+"\n"+out.String()))
	}
	return out.String(), nil
}
