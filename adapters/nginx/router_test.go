package nginx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/nginx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/nginxtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// instances is an InstanceSource backed by real, in-memory state.
type instances struct {
	mu   sync.Mutex
	list []adapters.Instance
}

func (s *instances) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]adapters.Instance(nil), s.list...), nil
}

func (s *instances) set(l []adapters.Instance) {
	s.mu.Lock()
	s.list = l
	s.mu.Unlock()
}

// startApp runs an HTTP server that answers with its version.
func startApp(t testing.TB, version string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		io.WriteString(w, version)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// fixture is a private nginx, app servers for v1 and v2 and a router.
type fixture struct {
	ngx    *nginxtest.Server
	router *nginx.Router
	src    *instances
	rel    *spec.Release
	listen string
}

func newFixture(t testing.TB, usePIDFile bool) *fixture {
	t.Helper()
	ngx := nginxtest.Start(t, nginxtest.Options{})
	src := &instances{}
	var list []adapters.Instance
	for _, v := range []string{"v1", "v2"} {
		for i := range 2 {
			list = append(list, adapters.Instance{ID: fmt.Sprintf("demo-%s-%d", v, i), Version: v, Addr: startApp(t, v), Ready: true})
		}
	}
	src.set(list)
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	rel, err := spec.Parse([]byte(fmt.Sprintf(`
app: demo
version: v2
backend: {type: process, process: {command: [demo]}}
traffic:
  type: nginx
  nginx: {listen: "%s"}
  trust: {clientIPs: [127.0.0.1]}   # the tests' clients may preview
`, listen)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := nginx.Config{
		Binary: ngx.Binary, Prefix: ngx.Prefix, ConfFile: ngx.ConfFile, IncludeDir: ngx.IncludeDir,
		StatusAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), Instances: src,
		ErrorLog: ngx.ErrorLog, VerifyTimeout: 2 * time.Second, Logger: testLogger(),
	}
	if usePIDFile {
		cfg.PIDFile = ngx.PIDFile
	}
	r, err := nginx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ngx: ngx, router: r, src: src, rel: rel, listen: listen}
}

func weights(preview string, vw ...any) traffic.Split {
	s := traffic.Split{Preview: preview}
	for i := 0; i < len(vw); i += 2 {
		s.Weights = append(s.Weights, traffic.VersionWeight{Version: vw[i].(string), Weight: vw[i+1].(int)})
	}
	return s
}

// startLoad sends GETs through nginx from several workers. A response
// counts towards a phase only on a connection dialled in that phase: a
// kept-alive connection from before a reload may still reach an old
// worker, which finishes its request under the previous split.
func startLoad(t testing.TB, url string, workers int) *loadgen.Load {
	return loadgen.Start(t, loadgen.Config{URL: url, Workers: workers, PhaseByConnection: true})
}

func TestWeightStepsUnderLoad(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, true)
	ctx := context.Background()
	if err := f.router.SetWeights(ctx, f.rel, weights("", "v1", 100)); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, "http://"+f.listen+"/", 8)
	const samples = 4000
	steps := []int{0, 10, 25, 50, 75, 100}
	for _, w := range steps {
		s := weights("", "v2", w, "v1", 100-w)
		if err := f.router.SetWeights(ctx, f.rel, s); err != nil {
			t.Fatalf("weight %d: %v", w, err)
		}
		got, err := f.router.Weights(ctx, "demo")
		if err != nil || !got.Equal(s) {
			t.Fatalf("Weights = %+v, %v; want %+v", got, err, s)
		}
		counts := l.Measure(t, samples, 60*time.Second, -1)
		share := 100 * float64(counts["v2"]) / float64(counts["v1"]+counts["v2"])
		t.Logf("v2 weight %3d%%: measured %5.1f%% of %d requests (%v)", w, share, counts["v1"]+counts["v2"], counts)
		if d := share - float64(w); d > 3 || d < -3 {
			t.Errorf("v2 weight %d%%: measured %.1f%%, off by more than 3 points", w, share)
		}
		if (w == 0 && counts["v2"] != 0) || (w == 100 && counts["v1"] != 0) {
			t.Errorf("v2 weight %d%%: counts %v, want all on one version", w, counts)
		}
	}
	res := l.Stop()
	t.Logf("%d requests through %d reloads, %d failed", res.OK+res.Failed, len(steps), res.Failed)
	if res.Failed != 0 {
		t.Fatalf("%d requests failed during weight steps, e.g. %v", res.Failed, res.Errors)
	}
}

func get(t testing.TB, url string, hdr map[string]string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Version"), resp.StatusCode
}

func TestStickyUsersAndPreview(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, false)
	ctx := context.Background()
	url := "http://" + f.listen + "/"
	if err := f.router.SetWeights(ctx, f.rel, weights("v2", "v2", 0, "v1", 100)); err != nil {
		t.Fatal(err)
	}
	// Preview: only the exact header value reaches v2.
	for range 20 {
		if v, _ := get(t, url, map[string]string{"X-Graylane-Version": "v2"}); v != "v2" {
			t.Fatalf("preview header reached %q, want v2", v)
		}
		if v, _ := get(t, url, map[string]string{"X-Graylane-Version": "v3"}); v != "v1" {
			t.Fatalf("unknown preview value reached %q, want v1", v)
		}
		if v, _ := get(t, url, nil); v != "v1" {
			t.Fatalf("plain request reached %q at weight 0, want v1", v)
		}
	}
	const users = 400
	onCanary := func() map[int]bool {
		m := map[int]bool{}
		for u := range users {
			id := fmt.Sprintf("user-%d", u)
			v, code := get(t, url, map[string]string{"X-Gray-User": id})
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			// The same user by cookie, and again by header: same version.
			if v2, _ := get(t, url, map[string]string{"Cookie": "gray_user=" + id}); v2 != v {
				t.Fatalf("user %s: header -> %s, cookie -> %s", id, v, v2)
			}
			if v3, _ := get(t, url, map[string]string{"X-Gray-User": id}); v3 != v {
				t.Fatalf("user %s not sticky: %s then %s", id, v, v3)
			}
			m[u] = v == "v2"
		}
		return m
	}
	var prev map[int]bool
	for _, w := range []int{10, 25, 50} {
		if err := f.router.SetWeights(ctx, f.rel, weights("", "v2", w, "v1", 100-w)); err != nil {
			t.Fatal(err)
		}
		cur := onCanary()
		n := 0
		for u, c := range cur {
			if c {
				n++
			}
			if prev[u] && !c {
				t.Errorf("user-%d was on the canary at the previous step and left it at %d%%", u, w)
			}
		}
		t.Logf("weight %d%%: %d of %d sticky users on v2", w, n, users)
		if share := 100 * n / users; share < w-8 || share > w+8 {
			t.Errorf("weight %d%%: %d%% of users on v2", w, share)
		}
		prev = cur
	}
}

func TestRejectedConfigKeepsPrevious(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, true)
	ctx := context.Background()
	url := "http://" + f.listen + "/"
	if err := f.router.SetWeights(ctx, f.rel, weights("", "v1", 100)); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(f.router.Path("demo"))
	if err != nil {
		t.Fatal(err)
	}
	reloads := strings.Count(f.ngx.LogTail(1000), "reconfiguring")
	// A backend reports an instance whose host nginx cannot resolve.
	good, _ := f.src.Observe(ctx, "demo")
	f.src.set(append(good, adapters.Instance{ID: "demo-v2-9", Version: "v2", Addr: "no-such-host.invalid:80", Ready: true}))
	err = f.router.SetWeights(ctx, f.rel, weights("", "v2", 50, "v1", 50))
	if !errors.Is(err, nginx.ErrRejected) {
		t.Fatalf("err = %v, want ErrRejected", err)
	}
	if !strings.Contains(err.Error(), `host not found in upstream "no-such-host.invalid:80"`) {
		t.Fatalf("error lacks nginx's message: %v", err)
	}
	after, _ := os.ReadFile(f.router.Path("demo"))
	if string(after) != string(before) {
		t.Fatal("rejected render replaced the previous file")
	}
	if s, _ := f.router.Weights(ctx, "demo"); !s.Equal(weights("", "v1", 100)) {
		t.Fatalf("Weights after rejection = %+v", s)
	}
	if n := strings.Count(f.ngx.LogTail(1000), "reconfiguring"); n != reloads {
		t.Fatalf("nginx was reloaded (%d -> %d reconfigurations) after a rejected render", reloads, n)
	}
	for range 100 {
		if v, code := get(t, url, nil); v != "v1" || code != 200 {
			t.Fatalf("after rejection: %d %q, want 200 v1", code, v)
		}
	}
	if !f.ngx.Running() {
		t.Fatal("nginx died")
	}
}

// TestReloadRefusedByMaster: `nginx -t` accepts a listen on a port another
// process holds, but the master cannot bind it and keeps the old
// configuration. The router notices (the new digest never answers), puts
// the previous file back and reports nginx's own complaint.
func TestReloadRefusedByMaster(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, true)
	ctx := context.Background()
	if err := f.router.SetWeights(ctx, f.rel, weights("", "v1", 100)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(f.router.Path("demo"))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	rel := f.rel.Clone()
	rel.Traffic.Nginx.Listen = busy.Addr().String()
	err = f.router.SetWeights(ctx, rel, weights("", "v2", 100))
	if !errors.Is(err, nginx.ErrNotVerified) {
		t.Fatalf("err = %v, want ErrNotVerified", err)
	}
	t.Logf("refused reload: %v", err)
	if !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("error lacks nginx's complaint: %v", err)
	}
	if after, _ := os.ReadFile(f.router.Path("demo")); string(after) != string(before) {
		t.Fatal("the previous file was not restored")
	}
	for range 50 {
		if v, code := get(t, "http://"+f.listen+"/", nil); v != "v1" || code != 200 {
			t.Fatalf("after the refused reload: %d %q, want 200 v1", code, v)
		}
	}
}

func TestIdempotentSyncAndForget(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, true)
	ctx := context.Background()
	url := "http://" + f.listen + "/"
	if s, err := f.router.Weights(ctx, "demo"); err != nil || len(s.Weights) != 0 {
		t.Fatalf("Weights before any SetWeights = %+v, %v; want empty", s, err)
	}
	s := weights("", "v2", 50, "v1", 50)
	if err := f.router.SetWeights(ctx, f.rel, s); err != nil {
		t.Fatal(err)
	}
	reloads := strings.Count(f.ngx.LogTail(1000), "reconfiguring")
	for range 3 {
		if err := f.router.SetWeights(ctx, f.rel, s); err != nil {
			t.Fatal(err)
		}
		if err := f.router.Sync(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(f.ngx.LogTail(1000), "reconfiguring"); n != reloads {
		t.Fatalf("repeating the same split reloaded nginx %d times", n-reloads)
	}
	// v2's instances go away: Sync moves its share to v1 without a new split.
	all, _ := f.src.Observe(ctx, "demo")
	var v1 []adapters.Instance
	for _, in := range all {
		if in.Version == "v1" {
			v1 = append(v1, in)
		}
	}
	f.src.set(v1)
	if err := f.router.Sync(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if v, code := get(t, url, nil); v != "v1" || code != 200 {
			t.Fatalf("after v2 left: %d %q, want 200 v1", code, v)
		}
	}
	if got, _ := f.router.Weights(ctx, "demo"); !got.Equal(s) {
		t.Fatalf("Sync changed the split to %+v", got)
	}
	if err := f.router.SetWeights(ctx, f.rel, weights("", "v1", 70)); err == nil {
		t.Fatal("a split summing to 70 was accepted")
	}
	if err := f.router.Forget(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.router.Path("demo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there after Forget: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the app's server block gone after Forget", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return nil
		}
		resp.Body.Close()
		return fmt.Errorf("still answering %s", resp.Status)
	})
}

func TestCancelledContext(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.router.SetWeights(ctx, f.rel, weights("", "v1", 100)); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetWeights with a cancelled ctx: %v", err)
	}
	if _, err := f.router.Weights(ctx, "demo"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Weights with a cancelled ctx: %v", err)
	}
	if _, err := os.Stat(f.router.Path("demo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a cancelled SetWeights wrote a file")
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("GRAYLANE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// blockingSource blocks its first Observe until release is closed.
type blockingSource struct {
	*instances
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingSource) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.entered)
		<-b.release
	}
	return b.instances.Observe(ctx, app)
}

// TestSyncNeverUndoesANewerSplit: a Sync that read the split in force and
// is still observing instances must not install that split over a
// SetWeights that happened meanwhile.
func TestSyncNeverUndoesANewerSplit(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t, true)
	ctx := context.Background()
	if err := f.router.SetWeights(ctx, f.rel, weights("", "v1", 100)); err != nil {
		t.Fatal(err)
	}
	src := &blockingSource{instances: f.src, entered: make(chan struct{}), release: make(chan struct{})}
	r, err := nginx.New(nginx.Config{Binary: f.ngx.Binary, Prefix: f.ngx.Prefix, ConfFile: f.ngx.ConfFile, PIDFile: f.ngx.PIDFile,
		IncludeDir: f.ngx.IncludeDir, Instances: src, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	// The new router learns the release (same split: nothing to reload).
	src.once.Do(func() {})
	if err := r.SetWeights(ctx, f.rel, weights("", "v1", 100)); err != nil {
		t.Fatal(err)
	}
	src.once = sync.Once{}
	syncDone := make(chan error, 1)
	go func() { syncDone <- r.Sync(ctx, "demo") }()
	<-src.entered // Sync read v1:100 and is observing
	setDone := make(chan error, 1)
	go func() { setDone <- r.SetWeights(ctx, f.rel, weights("", "v2", 100)) }()
	select {
	case err := <-setDone:
		setDone <- err // finished before Sync: the bug would now undo it
	case <-time.After(300 * time.Millisecond):
	}
	close(src.release)
	if err := <-syncDone; err != nil {
		t.Fatal(err)
	}
	if err := <-setDone; err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Weights(ctx, "demo"); !got.Equal(weights("", "v2", 100)) {
		t.Fatalf("split in force = %+v, want v2 100 (Sync undid the newer SetWeights)", got)
	}
}
