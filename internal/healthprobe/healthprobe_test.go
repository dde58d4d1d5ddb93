package healthprobe_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/spec"
)

func TestSpecOf(t *testing.T) {
	def := healthprobe.Spec{Path: spec.DefaultHealthPath, Interval: spec.DefaultHealthInterval, Timeout: spec.DefaultHealthTimeout}
	for _, tc := range []struct {
		name string
		in   spec.Health
		want healthprobe.Spec
	}{
		{"defaults", spec.Health{}, def},
		{"all set", spec.Health{Path: "/ready", Interval: spec.D(200 * time.Millisecond), Timeout: spec.D(3 * time.Second)},
			healthprobe.Spec{Path: "/ready", Interval: 200 * time.Millisecond, Timeout: 3 * time.Second}},
		{"zero durations keep the defaults", spec.Health{Interval: spec.D(0), Timeout: spec.D(0)}, def},
	} {
		if got := healthprobe.SpecOf(tc.in); got != tc.want {
			t.Errorf("%s: SpecOf = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	var status int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	p := healthprobe.New(nil)
	s := healthprobe.Spec{Path: "/ready", Timeout: 5 * time.Second}
	ctx := context.Background()

	for _, tc := range []struct {
		status  int
		body    string
		wantErr string // "" = healthy
	}{
		{200, "ok", ""},
		{204, "", ""},
		{299, "", ""},
		{503, "draining\n  now\n", "503 Service Unavailable: draining now"},
		{500, "", "500 Internal Server Error"},
		{301, "", "301 Moved Permanently"},
		{503, strings.Repeat("x", 1000), "503 Service Unavailable: " + strings.Repeat("x", 256)},
	} {
		status, body = tc.status, tc.body
		err := p.Check(ctx, addr, s)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("status %d: Check = %v, want healthy", tc.status, err)
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("status %d: Check = %v, want %q", tc.status, err, tc.wantErr)
		}
	}
	// another path is another answer
	if err := p.Check(ctx, addr, healthprobe.Spec{Path: "/healthz", Timeout: 5 * time.Second}); err == nil || !strings.HasPrefix(err.Error(), "404") {
		t.Errorf("Check of a path the instance does not serve = %v, want 404", err)
	}
}

func TestCheckErrorsNameTheCause(t *testing.T) {
	p := healthprobe.New(nil)
	// a port nobody listens on: the dial's error, without the URL
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	err = p.Check(context.Background(), addr, healthprobe.Spec{Path: "/healthz", Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "Get ") {
		t.Errorf("Check of a closed port = %v, want the dial's error without the URL", err)
	}
	if err := p.Check(context.Background(), "", healthprobe.Spec{}); err == nil {
		t.Error("Check without an address passed")
	}
	// a server that never answers: the probe's timeout ends it
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	err = p.Check(context.Background(), strings.TrimPrefix(srv.URL, "http://"), healthprobe.Spec{Path: "/", Timeout: 50 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Check of a server that never answers = %v, want the timeout (context.DeadlineExceeded)", err)
	}
}

// TestStreakRecord walks the readiness rule: one pass makes an instance
// ready, threshold failures in a row make a ready one unready, and an
// instance never ready stays unready on any failure.
func TestStreakRecord(t *testing.T) {
	fail := errors.New("503")
	for _, tc := range []struct {
		name      string
		threshold int
		probes    []error
		want      []bool
	}{
		{"first pass makes ready", 3, []error{fail, fail, nil}, []bool{false, false, true}},
		{"threshold 3: third failure in a row unready", 3, []error{nil, fail, fail, fail}, []bool{true, true, true, false}},
		{"a pass resets the count", 3, []error{nil, fail, fail, nil, fail, fail, fail}, []bool{true, true, true, true, true, true, false}},
		{"threshold 1: one failure unready", 1, []error{nil, fail}, []bool{true, false}},
		{"threshold 0 counts as 1", 0, []error{nil, fail}, []bool{true, false}},
		{"unready stays unready while failing", 3, []error{nil, fail, fail, fail, fail}, []bool{true, true, true, false, false}},
		{"back after a pass", 2, []error{nil, fail, fail, nil}, []bool{true, true, false, true}},
	} {
		var s healthprobe.Streak
		ready := false
		for i, err := range tc.probes {
			ready = s.Record(ready, err, tc.threshold)
			if ready != tc.want[i] {
				t.Errorf("%s: after probe %d (%v) ready = %v, want %v", tc.name, i, err, ready, tc.want[i])
				break
			}
		}
	}
	// The owner's readiness wins: an instance the owner took out of
	// traffic (stopping) is not made ready again by a failing probe.
	var s healthprobe.Streak
	s.Record(false, nil, 3)
	if s.Record(false, fail, 3) {
		t.Error("a failing probe made an unready instance ready")
	}
	if !s.Passed() || s.Fails() != 1 {
		t.Errorf("Passed %v Fails %d, want true 1", s.Passed(), s.Fails())
	}
}

// TestStreakJudged: an adopted instance's health is pending until one
// probe passes or threshold fail in a row.
func TestStreakJudged(t *testing.T) {
	fail := errors.New("timeout")
	var s healthprobe.Streak
	if s.Judged(3) {
		t.Fatal("a streak with no probe is judged")
	}
	s.Record(true, fail, 3)
	s.Record(true, fail, 3)
	if s.Judged(3) {
		t.Fatal("judged after 2 of 3 failures")
	}
	s.Record(true, fail, 3)
	if !s.Judged(3) {
		t.Fatal("not judged after 3 failures in a row")
	}
	var p healthprobe.Streak
	p.Record(true, fail, 3)
	p.Record(true, nil, 3)
	if !p.Judged(3) {
		t.Fatal("not judged after a pass")
	}
	var z healthprobe.Streak
	z.Record(false, fail, 0)
	if !z.Judged(0) {
		t.Fatal("threshold 0: not judged after one failure")
	}
}

// TestStreakNext: 50ms, doubling up to the interval until the first pass,
// then the interval; it never overflows however long an instance fails.
func TestStreakNext(t *testing.T) {
	var s healthprobe.Streak
	var got []time.Duration
	for range 6 {
		got = append(got, s.Next(time.Second))
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waits before the first pass = %v, want %v", got, want)
	}
	for range 100 {
		if d := s.Next(time.Second); d != time.Second {
			t.Fatalf("a long-failing instance's wait = %v, want the interval", d)
		}
	}
	var short healthprobe.Streak
	if d := short.Next(20 * time.Millisecond); d != 20*time.Millisecond {
		t.Errorf("interval below 50ms: wait %v, want the interval", d)
	}
	var p healthprobe.Streak
	p.Record(false, nil, 3)
	if d := p.Next(time.Second); d != time.Second {
		t.Errorf("after a pass the wait is %v, want the interval", d)
	}
}
