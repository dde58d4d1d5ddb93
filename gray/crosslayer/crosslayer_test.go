package crosslayer_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/nginx"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/nginxtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

const salt = "crosslayer-2025"

var weights = []int{1, 5, 20, 50, 90}

// keys are 10,000 user keys: 8,000 ASCII of several shapes and 2,000
// non-ASCII (Chinese, accented Latin, emoji).
func keys() []string {
	var out []string
	for i := 0; i < 8000; i++ {
		switch i % 4 {
		case 0:
			out = append(out, fmt.Sprintf("user-%d", i))
		case 1:
			out = append(out, fmt.Sprintf("u%d@example.com", i))
		case 2:
			out = append(out, fmt.Sprintf("%08x-4f1c-%04x", i*2654435761, i))
		default:
			out = append(out, fmt.Sprintf("Tenant_%d/user.%d", i%97, i))
		}
	}
	for i := 0; i < 2000; i++ {
		switch i % 3 {
		case 0:
			out = append(out, fmt.Sprintf("用户-%d", i))
		case 1:
			out = append(out, fmt.Sprintf("Zoë-Müller-%d", i))
		default:
			out = append(out, fmt.Sprintf("emoji-😀-%d", i))
		}
	}
	return out
}

func splitAt(w int) traffic.Split {
	return traffic.Split{Weights: []traffic.VersionWeight{{Version: "v2", Weight: w}, {Version: "v1", Weight: 100 - w}}}
}

// versionServer answers its version in X-Version.
func versionServer(t *testing.T, version string) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type static map[string]string // version -> addr

func (s static) Observe(context.Context, string) ([]adapters.Instance, error) {
	var out []adapters.Instance
	for v, a := range s {
		out = append(out, adapters.Instance{ID: v, Version: v, Addr: a, Ready: true})
	}
	return out, nil
}

// through sends one request per key to url and returns the version that
// served each.
func through(t *testing.T, url string, ks []string) []string {
	t.Helper()
	out := make([]string, len(ks))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(ks); i += 8 {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header["X-Gray-User"] = []string{ks[i]}
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				out[i] = resp.Header.Get("X-Version")
			}
		}(w)
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("request through %s: %v", url, err)
	default:
	}
	return out
}

// TestLayersAgree: at weights 1, 5, 20, 50 and 90, the built-in proxy and
// a real nginx (real requests through both), the SDK and the Java class of
// docs/gray.md decide the same version for each of 10,000 user keys.
func TestLayersAgree(t *testing.T) {
	testenv.IntegrationTest(t)
	ks := keys()
	backends := static{"v1": versionServer(t, "v1"), "v2": versionServer(t, "v2")}

	// the built-in proxy
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	pr, err := proxy.NewRouter(proxy.RouterConfig{Instances: backends, Resync: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	proxyRel := mustParse(t, fmt.Sprintf("app: shop\nversion: v2\nbackend: {type: process, process: {command: [x], proxy: %q}}\ngray: {salt: %s}\n", proxyAddr, salt))

	// nginx with graylane's files
	ngx := nginxtest.Start(t, nginxtest.Options{WorkerProcesses: 1})
	ngxAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	nr, err := nginx.New(nginx.Config{Binary: ngx.Binary, Prefix: ngx.Prefix, ConfFile: ngx.ConfFile, PIDFile: ngx.PIDFile,
		IncludeDir: ngx.IncludeDir, ErrorLog: ngx.ErrorLog, StatusAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Instances: backends})
	if err != nil {
		t.Fatal(err)
	}
	ngxRel := mustParse(t, fmt.Sprintf("app: shop\nversion: v2\nbackend: {type: process, process: {command: [x]}}\ntraffic: {type: nginx, nginx: {listen: %q}}\ngray: {salt: %s}\n", ngxAddr, salt))

	java := javaDecisions(t, ks)
	ctx := context.Background()
	for wi, w := range weights {
		if err := pr.SetWeights(ctx, proxyRel, splitAt(w)); err != nil {
			t.Fatal(err)
		}
		if err := nr.SetWeights(ctx, ngxRel, splitAt(w)); err != nil {
			t.Fatal(err)
		}
		viaProxy := through(t, "http://"+proxyAddr+"/", ks)
		viaNginx := through(t, "http://"+ngxAddr+"/", ks)
		router := sdk.NewRouter(sdk.RouterConfig{Edge: true})
		d := &gray.Document{Schema: gray.Schema, App: "shop", Generation: 1,
			UserKey:   gray.UserKey{Header: gray.DefaultUserHeader, Cookie: gray.DefaultUserCookie},
			Bucketing: gray.Bucketing{Hash: gray.HashName, Salt: salt, Buckets: gray.Buckets}, Split: splitAt(w).Weights}
		router.Set(d)
		canary, disagree := 0, 0
		for i, k := range ks {
			req, _ := http.NewRequest(http.MethodGet, "http://shop/", nil)
			req.Header["X-Gray-User"] = []string{k}
			bySDK, _ := router.Decide(req).Version("shop")
			byJava := "v1"
			if java[wi][i] == 'b' {
				byJava = "v2"
			}
			if viaProxy[i] != bySDK || viaNginx[i] != bySDK || byJava != bySDK {
				disagree++
				if disagree <= 5 {
					t.Errorf("weight %d, key %q: proxy %s, nginx %s, SDK %s, Java %s", w, k, viaProxy[i], viaNginx[i], bySDK, byJava)
				}
			}
			if bySDK == "v2" {
				canary++
			}
		}
		share := float64(canary) / float64(len(ks)) * 100
		t.Logf("weight %d%%: %d of %d keys on the canary (%.2f%%) in every layer; %d disagreements", w, canary, len(ks), share, disagree)
		if disagree > 0 {
			t.Fatalf("weight %d: %d of %d keys routed differently", w, disagree, len(ks))
		}
		if share < float64(w)-1.5 || share > float64(w)+1.5 {
			t.Errorf("weight %d: %.2f%% of keys on the canary", w, share)
		}
	}
}

func mustParse(t *testing.T, doc string) *spec.Release {
	t.Helper()
	rel, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return rel
}

// javaDecisions runs the Java class of docs/gray.md over the keys: one
// line per weight, 'b' where the key is on the canary (v2), 'a' where not.
func javaDecisions(t *testing.T, ks []string) []string {
	t.Helper()
	javac, java := testenv.LookPath(t, "javac"), testenv.LookPath(t, "java")
	md, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "gray.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(md), "```java\n")
	src, _, _ := strings.Cut(rest, "```")
	ws := make([]string, len(weights))
	for i, w := range weights {
		ws[i] = fmt.Sprint(w)
	}
	main := `import java.nio.charset.StandardCharsets; import java.nio.file.*; import java.util.*;
public class Decide { public static void main(String[] a) throws Exception {
  List<String> keys = Files.readAllLines(Paths.get(a[0]), StandardCharsets.UTF_8);
  int[] ws = {` + strings.Join(ws, ", ") + `};
  for (int w : ws) { StringBuilder b = new StringBuilder();
    for (String k : keys) { int bucket = GrayBucket.bucket("` + salt + `", k);
      b.append("v2".equals(GrayBucket.pick(new String[]{"v2", "v1"}, new int[]{w, 100 - w}, bucket)) ? 'b' : 'a'); }
    System.out.println(b); } } }`
	dir := t.TempDir()
	files := map[string]string{"GrayBucket.java": src, "Decide.java": main, "keys.txt": strings.Join(ks, "\n") + "\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(javac, "-encoding", "UTF-8", "-d", dir, filepath.Join(dir, "GrayBucket.java"), filepath.Join(dir, "Decide.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	out, err := exec.Command(java, "-cp", dir, "Decide", filepath.Join(dir, "keys.txt")).Output()
	if err != nil {
		t.Fatalf("java: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(weights) || len(lines[0]) != len(ks) {
		t.Fatalf("java printed %d lines of %d, want %d of %d", len(lines), len(lines[0]), len(weights), len(ks))
	}
	return lines
}
