package loadgen_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/loadgen"
	"github.com/graylane/graylane/testsupport/testenv"
)

// A server that answers v1 until told otherwise: the run counts answers
// per phase and version, keeps every sample, and counts a 500 as a
// failure with its status.
func TestPhasesCountsAndFailures(t *testing.T) {
	var version atomic.Value
	version.Store("v1")
	var broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if broken.Load() {
			w.Header().Set(loadgen.UpstreamHeader, "127.0.0.1:1")
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set(loadgen.VersionHeader, version.Load().(string))
	}))
	defer srv.Close()

	l := loadgen.Start(t, loadgen.Config{URL: srv.URL, Workers: 2})
	if got := l.Measure(t, 50, 10*time.Second, 0); got["v1"] < 50 || len(got) != 1 {
		t.Fatalf("phase 1 = %v, want only v1 (at least 50)", got)
	}
	version.Store("v2")
	l.Next() // requests in flight across the switch land in the previous phase
	got := l.Measure(t, 50, 10*time.Second, 0)
	if got["v2"] < 50 || len(got) != 1 {
		t.Fatalf("phase 3 = %v, want only v2", got)
	}
	from := time.Now() // every request sent from here on meets v2
	l.Measure(t, 20, 10*time.Second, 0)
	to := time.Now()
	broken.Store(true)
	testenv.Eventually(t, 10*time.Second, "a failed request", func() error {
		_, failed, _ := l.Totals()
		return testenv.Check(failed > 0, "none failed yet")
	})
	res := l.Stop()
	if res.Failed == 0 || len(loadgen.Failures(res.Samples)) != res.Failed || res.OK+res.Failed != len(res.Samples) {
		t.Fatalf("result: ok %d failed %d samples %d", res.OK, res.Failed, len(res.Samples))
	}
	if res.Errors[0] != "500 Internal Server Error from 127.0.0.1:1" {
		t.Fatalf("first error %q", res.Errors[0])
	}
	if share, n := loadgen.Share(res.Samples, "v2", from, to); n < 20 || share != 1 {
		t.Fatalf("after the switch: v2 share %.2f of %d", share, n)
	}
	if share, n := loadgen.Share(res.Samples, "v1", time.Time{}, from); n == 0 || share == 0 || share == 1 {
		t.Fatalf("before: v1 share %.2f of %d, want some v1 and some v2", share, n)
	}
	if again := l.Stop(); again.OK != res.OK || again.Failed != res.Failed {
		t.Fatal("a second Stop changed the result")
	}
}

// With PhaseByConnection, answers on a connection opened in an earlier
// phase do not count towards the current one.
func TestPhaseByConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(loadgen.VersionHeader, "v1")
	}))
	defer srv.Close()
	l := loadgen.Start(t, loadgen.Config{URL: srv.URL, Workers: 1, PhaseByConnection: true})
	l.WaitPhase(t, 0, 20, 10*time.Second, 0)
	phase := l.Next() // the worker keeps its kept-alive connection from phase 0
	ok0, _, _ := l.Totals()
	testenv.Eventually(t, 10*time.Second, "20 more answers", func() error {
		ok, _, _ := l.Totals()
		return testenv.Check(ok > ok0+20, "%d answers", ok-ok0)
	})
	if got := l.PhaseCounts(phase); len(got) != 0 {
		t.Fatalf("phase %d counted %v on an old connection", phase, got)
	}
	srv.CloseClientConnections() // the next request dials: phase 1 from now on
	l.WaitPhase(t, phase, 20, 10*time.Second, -1)
}
