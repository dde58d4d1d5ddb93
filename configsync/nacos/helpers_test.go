package nacos_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// within is how long tests wait for Polaris to show a change: it serves
// reads from a cache refreshed every second and delivers the first change
// after a new listener up to ~5 s late (the SDK's listen cycle).
const within = 15 * time.Second

// testLogger writes the source's log lines to the test log, so a failing
// test shows what the source saw. nacos-sdk-go's logger is process-wide
// and may log from background goroutines after the test ended: those lines
// are dropped.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("GRAYLANE_NACOS_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return testenv.Logger(t, level)
}

// testGroup is a Nacos group of the test's own: nacos-sdk-go rate-limits
// reads per dataId and group across the whole process, so parallel tests
// must not share dataIds.
func testGroup(t testing.TB) string {
	sum := md5.Sum([]byte(t.Name()))
	return "GT-" + hex.EncodeToString(sum[:4])
}

// testConfig points a source at srv with short intervals.
func testConfig(srv *polaris.Server, group string) nacos.Config {
	return nacos.Config{
		Servers:       []string{srv.NacosAddr()},
		Group:         group,
		Timeout:       5 * time.Second,
		ProbeInterval: 500 * time.Millisecond,
	}
}

func newSource(t testing.TB, srv *polaris.Server, group string) *nacos.Source {
	t.Helper()
	return newSourceWith(t, srv, group, nil)
}

func newSourceWith(t testing.TB, srv *polaris.Server, group string, lock nacos.IndexLocker) *nacos.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := testConfig(srv, group)
	cfg.Logger, cfg.IndexLock = testLogger(t), lock
	s, err := nacos.New(ctx, cfg)
	if err != nil {
		t.Fatalf("nacos.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitGet polls Get until the document has the wanted content ("" = not
// found).
func waitGet(t testing.TB, s *nacos.Source, app, want string) configsync.Entry {
	t.Helper()
	var got configsync.Entry
	testenv.Eventually(t, within, fmt.Sprintf("get %s = %q", app, want), func() error {
		e, err := s.Get(ctxT(t), app)
		if want == "" {
			if errors.Is(err, configsync.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("got %q, %v", e.Data, err)
		}
		if err != nil {
			return err
		}
		if string(e.Data) != want {
			return fmt.Errorf("got %q", e.Data)
		}
		got = e
		return nil
	})
	return got
}

// recorder collects a watch's responses.
type recorder struct {
	mu    sync.Mutex
	resps []configsync.WatchResponse
	done  chan struct{}
}

func record(ctx context.Context, ch <-chan configsync.WatchResponse) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for resp := range ch {
			r.mu.Lock()
			r.resps = append(r.resps, resp)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) all() []configsync.WatchResponse {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]configsync.WatchResponse(nil), r.resps...)
}

// state folds the responses into app -> content, as a consumer would.
func (r *recorder) state() map[string]string {
	st := map[string]string{}
	for _, resp := range r.all() {
		if resp.Reset {
			clear(st)
		}
		for _, ev := range resp.Events {
			if ev.Type == configsync.Delete {
				delete(st, ev.Entry.App)
			} else {
				st[ev.Entry.App] = string(ev.Entry.Data)
			}
		}
	}
	return st
}

// waitState waits until the folded watch state equals want.
func (r *recorder) waitState(t testing.TB, want map[string]string) {
	t.Helper()
	testenv.Eventually(t, within, fmt.Sprintf("watch state %v", want), func() error {
		if len(r.all()) == 0 {
			return fmt.Errorf("no response yet")
		}
		got := r.state()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("state %v", got)
		}
		return nil
	})
}

// waitErr waits for a response whose Err matches target (nil target: a
// response with Err == nil after index from).
func (r *recorder) waitErr(t testing.TB, from int, target error) int {
	t.Helper()
	var at int
	testenv.Eventually(t, within, fmt.Sprintf("watch response with err %v after #%d", target, from), func() error {
		resps := r.all()
		for i := from; i < len(resps); i++ {
			if (target == nil && resps[i].Err == nil) || (target != nil && errors.Is(resps[i].Err, target)) {
				at = i
				return nil
			}
		}
		return fmt.Errorf("%d responses", len(resps))
	})
	return at
}

// checkInvariants asserts what every watch must guarantee: revisions never
// go down, a Reset comes first, and no app gets the same content twice in a
// row.
func (r *recorder) checkInvariants(t testing.TB) {
	t.Helper()
	resps := r.all()
	if len(resps) == 0 {
		return
	}
	last := map[string]string{}
	var rev int64
	firstData := true
	for i, resp := range resps {
		if resp.Revision < rev {
			t.Errorf("response %d: revision %d after %d", i, resp.Revision, rev)
		}
		rev = resp.Revision
		if resp.Err != nil && len(resp.Events) == 0 && !resp.Reset {
			continue
		}
		if firstData && !resp.Reset {
			t.Errorf("response %d: first data response is not a Reset", i)
		}
		firstData = false
		if resp.Reset {
			clear(last)
		}
		for _, ev := range resp.Events {
			app := ev.Entry.App
			cur, ok := last[app]
			if ev.Type == configsync.Delete {
				if !ok && !resp.Reset {
					t.Errorf("response %d: delete of %s, which the consumer does not have", i, app)
				}
				delete(last, app)
				continue
			}
			if ok && cur == ev.Entry.Version && !resp.Reset {
				t.Errorf("response %d: %s delivered twice in a row (version %s)", i, app, cur)
			}
			last[app] = ev.Entry.Version
		}
	}
}

// bareSDKClient is a plain nacos-sdk-go config client of the test's own
// (not graylane's source), closed when the test ends: a reference beside
// graylane, or the SDK itself under test.
func bareSDKClient(t testing.TB, server constant.ServerConfig) config_client.IConfigClient {
	t.Helper()
	dir := t.TempDir()
	c, err := clients.NewConfigClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{TimeoutMs: 5000, CacheDir: filepath.Join(dir, "cache"), LogDir: filepath.Join(dir, "log"),
			LogLevel: "warn", NotLoadCacheAtStart: true, DisableUseSnapShot: true},
		ServerConfigs: []constant.ServerConfig{server},
	})
	if err != nil {
		t.Fatalf("create a nacos-sdk-go config client: %v", err)
	}
	t.Cleanup(c.CloseClient)
	return c
}
