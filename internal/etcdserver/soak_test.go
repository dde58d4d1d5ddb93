package etcdserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/graylane/graylane/internal/etcdserver"
)

// countingWriter counts the bytes of log written to it.
type countingWriter struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	if len(w.lines) < 5 {
		w.lines = append(w.lines, string(p))
	}
	return len(p), nil
}

func (w *countingWriter) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// soak writes n puts of a 4 KiB value over 20 keys (as graylane rewrites
// its per-app state records), then lets maintenance run for settle (or
// until the database is at most settled bytes, when settled > 0: a loaded
// machine compacts and defragments later, not differently), and returns
// the largest database size seen, the final size and the log bytes etcd
// wrote into graylane's logger.
func soak(tb testing.TB, cfg etcdserver.Config, n int, settle time.Duration, settled int64) (maxDB, finalDB int64, logBytes int) {
	tb.Helper()
	var logs countingWriter
	cfg.Dir = tb.TempDir()
	cfg.ClientAddr, cfg.PeerAddr, cfg.UnsafeNoFsync = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := etcdserver.Start(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	c, err := s.Client()
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	startLog := logs.size()
	value := strings.Repeat("x", 4096)
	for i := range n {
		if _, err := c.Put(ctx, fmt.Sprintf("/graylane/state/app%02d", i%20), value+fmt.Sprint(i)); err != nil {
			tb.Fatalf("put %d: %v", i, err)
		}
		if i%250 == 0 {
			size, _ := s.DBSize()
			maxDB = max(maxDB, size)
		}
	}
	// Watch the size for settle, or until it is down to settled. Running
	// out of time is not an error here: the caller judges the sizes.
	wctx, wcancel := context.WithTimeout(ctx, settle)
	defer wcancel()
	_ = testenv.Poll(wctx, func() error {
		size, _ := s.DBSize()
		maxDB = max(maxDB, size)
		return testenv.Check(settled > 0 && size <= settled, "%d bytes", size)
	})
	finalDB, _ = s.DBSize()
	maxDB = max(maxDB, finalDB)
	return maxDB, finalDB, logs.size() - startLog
}

// soakConfig is the embedded member's defaults with the periods shortened
// so a test sees them act: compaction keeps 1 s of history, free space is
// checked every 500 ms and defragmented from 1 MiB free.
func soakConfig() etcdserver.Config {
	return etcdserver.Config{AutoCompactionRetention: "1s", DefragInterval: 500 * time.Millisecond, DefragMinFree: 1 << 20}
}

// TestSoakKeepsLogAndDatabaseBounded: 5,000 writes of 4 KiB (20 MB of
// history) leave a database of a few MiB and almost no log, because the
// member compacts, defragments and logs only slow requests (issue 13:
// every request was logged, 590 KB/s at 20,000 apps, and nothing was ever
// compacted).
func TestSoakKeepsLogAndDatabaseBounded(t *testing.T) {
	testenv.IntegrationTest(t)
	maxDB, finalDB, logBytes := soak(t, soakConfig(), 5000, time.Minute, 8<<20)
	t.Logf("5,000 puts of 4 KiB over 20 keys: database at most %.1f MiB, %.1f MiB after settling; etcd log %d bytes", mib(maxDB), mib(finalDB), logBytes)
	if finalDB > 8<<20 {
		t.Errorf("database is %.1f MiB after 5,000 writes to 20 keys, want under 8 MiB (compacted and defragmented)", mib(finalDB))
	}
	if logBytes > 64<<10 {
		t.Errorf("etcd wrote %d bytes of log for 5,000 writes, want under 64 KiB (slow requests and warnings only)", logBytes)
	}
}

// BenchmarkSoak reports the same figures for the defaults (shortened as
// in the test) and for the embedded member as it was before issue 13:
// auto-compaction off and every request logged at info.
func BenchmarkSoak(b *testing.B) {
	testenv.IntegrationTest(b)
	before := etcdserver.Config{AutoCompactionRetention: "0", DefragInterval: -1, EtcdLogLevel: "info", WarnRequestDuration: time.Nanosecond}
	for _, tc := range []struct {
		name string
		cfg  etcdserver.Config
	}{{"defaults", soakConfig()}, {"before", before}} {
		b.Run(tc.name, func(b *testing.B) {
			n := max(b.N, 1000)
			maxDB, finalDB, logBytes := soak(b, tc.cfg, n, 4*time.Second, 0)
			b.ReportMetric(mib(maxDB), "max-db-MiB")
			b.ReportMetric(mib(finalDB), "final-db-MiB")
			b.ReportMetric(float64(logBytes)/float64(n), "log-bytes/write")
		})
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// TestQuotaAlarmShowsInCheckAndMetrics: a member with a 2 MiB quota
// filled past it raises NOSPACE, refuses writes, and says so in Check
// (graylane's /readyz) and in graylane_etcd_alarm{alarm="NOSPACE"}.
func TestQuotaAlarmShowsInCheckAndMetrics(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := etcdserver.Start(ctx, etcdserver.Config{
		Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true,
		QuotaBackendBytes: 2 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := client(t, s)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	if err := s.Check(ctx); err != nil {
		t.Fatalf("a fresh member: %v", err)
	}
	alarmsAre(t, s, 0)
	value := strings.Repeat("y", 256<<10)
	var putErr error
	for i := 0; i < 40 && putErr == nil; i++ {
		_, putErr = c.Put(ctx, fmt.Sprintf("/fill/%d", i), value)
	}
	if !errors.Is(putErr, rpctypes.ErrNoSpace) {
		t.Fatalf("writing 10 MiB into a 2 MiB quota: last error %v, want %v", putErr, rpctypes.ErrNoSpace)
	}
	if a := s.Alarms(); len(a) != 1 || a[0] != "NOSPACE" {
		t.Fatalf("alarms %v, want [NOSPACE]", a)
	}
	err = s.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "NOSPACE") || !strings.Contains(err.Error(), "quotaBackendBytes") {
		t.Fatalf("Check = %v, want the NOSPACE alarm and what to do", err)
	}
	alarmsAre(t, s, 1)
	if n, err := testutil.GatherAndCount(reg, "graylane_etcd_db_size_bytes", "graylane_etcd_quota_bytes"); err != nil || n != 2 {
		t.Fatalf("size and quota metrics: %d series, %v", n, err)
	}
}

// alarmsAre checks graylane_etcd_alarm against want (1 for NOSPACE).
func alarmsAre(t *testing.T, s *etcdserver.Server, nospace int) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP graylane_etcd_alarm 1 while the embedded etcd has this alarm active (NOSPACE: writes refused).
# TYPE graylane_etcd_alarm gauge
graylane_etcd_alarm{alarm="CORRUPT"} 0
graylane_etcd_alarm{alarm="NOSPACE"} %d
`, nospace)
	if err := testutil.CollectAndCompare(s.Collector(), strings.NewReader(want), "graylane_etcd_alarm"); err != nil {
		t.Fatal(err)
	}
}
