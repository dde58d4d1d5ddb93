package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/graylane/graylane/testsupport/testenv"
)

// DemoEntrypoint is the entrypoint of the demo images: cmd/demoapp, whose
// arguments (--version, --addr) come from the container's command.
const DemoEntrypoint = `ENTRYPOINT ["/bin/demoapp"]`

// DemoHealthcheck is the demo images' exec-form HEALTHCHECK: a scratch
// image has no shell, so the demo app probes itself on its default port.
const DemoHealthcheck = `HEALTHCHECK --interval=300ms --timeout=2s --retries=2 CMD ["/bin/demoapp","probe","--url","http://127.0.0.1:8080/healthz"]`

// CrashEntrypoint makes a demo image whose container exits at start: the
// demo app refuses --config-files without a config source, and says so on
// stderr.
const CrashEntrypoint = `ENTRYPOINT ["/bin/demoapp","--config-files=app.yaml"]`

var (
	binMu    sync.Mutex
	binCache = map[string]string{}
)

// StaticBinary builds the main package pkg of this repository (e.g.
// "./cmd/demoapp") with CGO_ENABLED=0, so it runs in an empty (scratch)
// image, once per test binary, and returns its path. Go's build cache
// makes later builds cheap.
func StaticBinary(pkg string, tags ...string) (string, error) {
	binMu.Lock()
	defer binMu.Unlock()
	key := pkg + "|" + strings.Join(tags, ",")
	if p, ok := binCache[key]; ok {
		return p, nil
	}
	root, err := testenv.FindRepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := testenv.ProcessTempDir("dockertest-bin-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	binCache[key] = out
	return out, nil
}

// File is one file of an imported image.
type File struct {
	// Path inside the image, e.g. "bin/demoapp".
	Path string
	// Source is the file on this machine.
	Source string
	Mode   int64
}

// ImportImage builds an image from files (a tarball given to the engine's
// import, as `docker import` does) with Dockerfile-style changes
// (ENTRYPOINT, HEALTHCHECK, ENV, ...), and tags it with every ref.
func (e *Engine) ImportImage(ctx context.Context, files []File, changes []string, refs ...string) error {
	if len(refs) == 0 {
		return errors.New("import image: no reference")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		for d := filepath.Dir(f.Path); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	// /tmp: apps write there
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	rc, err := e.cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, refs[0], image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("import %s: %w", refs[0], err)
	}
	if err := drainJSON(rc); err != nil {
		return fmt.Errorf("import %s: %w", refs[0], err)
	}
	for _, r := range refs[1:] {
		if err := e.cli.ImageTag(ctx, refs[0], r); err != nil {
			return fmt.Errorf("tag %s as %s: %w", refs[0], r, err)
		}
	}
	return nil
}

// drainJSON reads an engine progress stream to its end and returns the
// error it reports, if any.
func drainJSON(rc io.ReadCloser) error {
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// DemoImages imports the static demo app as each ref (e.g. "demoapp:v1",
// "demoapp:v2"), with DemoEntrypoint and DemoHealthcheck. The images are
// the same app: the version comes from the container's command
// (--version={{.Version}}).
func (e *Engine) DemoImages(t testing.TB, refs ...string) {
	t.Helper()
	if err := e.ImportDemo(context.Background(), []string{DemoEntrypoint, DemoHealthcheck}, refs...); err != nil {
		t.Fatal(err)
	}
}

// CrashImages imports demo images whose containers exit at start
// (CrashEntrypoint).
func (e *Engine) CrashImages(t testing.TB, refs ...string) {
	t.Helper()
	if err := e.ImportDemo(context.Background(), []string{CrashEntrypoint}, refs...); err != nil {
		t.Fatal(err)
	}
}

// ImportDemo imports the static demo app with the given changes as each
// ref (for TestMain and sync.Once, where t.Fatal does not fit).
func (e *Engine) ImportDemo(ctx context.Context, changes []string, refs ...string) error {
	bin, err := StaticBinary("./cmd/demoapp")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return e.ImportImage(ctx, []File{{Path: "bin/demoapp", Source: bin}}, changes, refs...)
}
