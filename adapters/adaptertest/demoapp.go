package adaptertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// DemoVersionHeader is the response header in which cmd/demoapp names its
// version.
const DemoVersionHeader = "X-Version"

// BuildDemoApp builds cmd/demoapp into dir and returns the binary's path.
// Call it once per test binary (from TestMain or a sync.Once).
func BuildDemoApp(dir string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("build demoapp: cannot locate the repository")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	out := filepath.Join(dir, "demoapp")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/demoapp")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build demoapp: %w\n%s", err, b)
	}
	return out, nil
}

// HTTPProbe returns a RouterHarness.Probe that GETs url with the extra
// header and returns the DemoVersionHeader of a 200 answer.
func HTTPProbe(url string) func(ctx context.Context, header http.Header) (string, error) {
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16},
	}
	return func(ctx context.Context, header http.Header) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		for k, vs := range header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", fmt.Errorf("GET %s: reading the body: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		v := resp.Header.Get(DemoVersionHeader)
		if v == "" {
			return "", fmt.Errorf("GET %s: no %s header", url, DemoVersionHeader)
		}
		return v, nil
	}
}
