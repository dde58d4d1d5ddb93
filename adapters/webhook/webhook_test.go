package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/webhook"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

const secret = "s3cret-for-tests"

// post is one POST the external system received.
type post struct {
	key, sig, ts, app string
	body              []byte
	state             webhook.DesiredState
}

// system plays the external deploy system over real HTTP.
type system struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	posts    []post
	gets     int
	badSigs  int
	running  map[string]int // what the status reports (ready instances)
	seenKeys map[string]bool
	// onPost decides the answer to the n-th POST (from 0); nil = 202.
	onPost func(n int, w http.ResponseWriter, r *http.Request) bool
	// lie: acknowledge POSTs but never change what runs.
	lie bool
	// status overrides the status body.
	status string
}

func newSystem(t *testing.T) *system {
	s := &system{t: t, running: map[string]int{"v1": 2}, seenKeys: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *system) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	// Verify the signature independently of the package under test.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(r.Header.Get("X-Graylane-Timestamp") + "." + string(body)))
	good := r.Header.Get("X-Graylane-Signature") == "sha256="+hex.EncodeToString(m.Sum(nil))
	s.mu.Lock()
	if !good {
		s.badSigs++
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/deploy":
		n := len(s.posts)
		p := post{key: r.Header.Get("Idempotency-Key"), sig: r.Header.Get("X-Graylane-Signature"), ts: r.Header.Get("X-Graylane-Timestamp"), app: r.Header.Get("X-Graylane-App"), body: body}
		json.Unmarshal(body, &p.state)
		s.posts = append(s.posts, p)
		on := s.onPost
		s.mu.Unlock()
		if on != nil && on(n, w, r) {
			return
		}
		s.mu.Lock()
		if !s.lie && !s.seenKeys[p.key] {
			s.running = p.state.Replicas
		}
		s.seenKeys[p.key] = true
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && r.URL.Path == "/apps/demo/status":
		s.gets++
		st := webhook.Status{App: "demo", Instances: []adapters.Instance{}}
		var vs []string
		for v := range s.running {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		for _, v := range vs {
			for i := range s.running[v] {
				st.Instances = append(st.Instances, adapters.Instance{ID: fmt.Sprintf("demo-%s-%d", v, i), Version: v, Addr: fmt.Sprintf("10.0.0.%d:8080", i+1), Ready: true, Meta: map[string]string{"zone": "a"}})
			}
		}
		override := s.status
		s.mu.Unlock()
		if override != "" {
			io.WriteString(w, override)
			return
		}
		json.NewEncoder(w).Encode(st)
	default:
		s.mu.Unlock()
		http.NotFound(w, r)
	}
}

func (s *system) getCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

func (s *system) postsCopy() []post {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]post(nil), s.posts...)
}

func (s *system) release(t *testing.T, version, extra string) *spec.Release {
	t.Helper()
	rel, err := spec.Parse([]byte(fmt.Sprintf(`
app: demo
version: %s
health: {interval: 20ms}
backend:
  type: webhook
  webhook:
    url: %s/deploy
    statusURL: "%s/apps/{{.App}}/status"
    secretEnv: DEPLOY_SECRET
    headers: {X-Team: payments}
%s`, version, s.srv.URL, s.srv.URL, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func newBackend(t *testing.T) *webhook.Backend {
	t.Helper()
	b, err := webhook.New(webhook.Config{
		Getenv:      func(k string) string { return map[string]string{"DEPLOY_SECRET": secret}[k] },
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testLogger() *slog.Logger {
	if os.Getenv("GRAYLANE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestApplySignsAndKeysTheDesiredState(t *testing.T) {
	s := newSystem(t)
	b := newBackend(t)
	rel := s.release(t, "v2", "")
	ctx := context.Background()
	want := traffic.Replicas{"v1": 1, "v2": 1, "v0": 0}
	if err := b.Apply(ctx, rel, want, adapters.Step{Index: 2, Reason: "setWeight 50"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, rel, want, adapters.Step{Index: 3, Reason: "resync"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, rel, traffic.Replicas{"v2": 2}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	ps := s.postsCopy()
	if len(ps) != 3 {
		t.Fatalf("%d POSTs, want 3", len(ps))
	}
	s.mu.Lock()
	bad := s.badSigs
	s.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d requests with a bad signature", bad)
	}
	first := ps[0].state
	if first.App != "demo" || first.Version != "v2" || !reflect.DeepEqual(first.Replicas, map[string]int{"v1": 1, "v2": 1}) ||
		first.Step == nil || *first.Step != 2 || first.Reason != "setWeight 50" || first.ReleaseHash != rel.Hash() {
		t.Fatalf("desired state = %+v", first)
	}
	if ps[0].key == "" || ps[0].key != first.IdempotencyKey || ps[0].app != "demo" {
		t.Fatalf("headers: key %q (body %q), app %q", ps[0].key, first.IdempotencyKey, ps[0].app)
	}
	if ps[1].key != ps[0].key {
		t.Fatalf("same desired state, different keys: %s %s", ps[0].key, ps[1].key)
	}
	if ps[2].key == ps[0].key {
		t.Fatal("different desired state, same key")
	}
	if k := webhook.IdempotencyKey("demo", "v2", traffic.Replicas{"v2": 1, "v1": 1}); k != ps[0].key {
		t.Fatalf("IdempotencyKey = %s, sent %s", k, ps[0].key)
	}
	h := http.Header{}
	h.Set("X-Graylane-Timestamp", ps[0].ts)
	h.Set("X-Graylane-Signature", ps[0].sig)
	if err := webhook.Verify([]byte(secret), h, ps[0].body, time.Minute, time.Now()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := webhook.Verify([]byte("other"), h, ps[0].body, time.Minute, time.Now()); !errors.Is(err, webhook.ErrBadSignature) {
		t.Fatalf("Verify with the wrong key: %v", err)
	}
	if err := webhook.Verify([]byte(secret), h, ps[0].body, time.Minute, time.Now().Add(time.Hour)); !errors.Is(err, webhook.ErrBadSignature) {
		t.Fatalf("Verify an hour later: %v", err)
	}
}

func TestObserveAndConverge(t *testing.T) {
	s := newSystem(t)
	b := newBackend(t)
	ctx := context.Background()
	if insts, err := b.Observe(ctx, "demo"); err != nil || insts != nil {
		t.Fatalf("Observe of an app never applied = %v, %v", insts, err)
	}
	rel := s.release(t, "v2", "")
	want := traffic.Replicas{"v1": 1, "v2": 3}
	if err := b.Apply(ctx, rel, want, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.WaitConverged(cctx, "demo", want); err != nil {
		t.Fatal(err)
	}
	insts, err := b.Observe(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 4 || insts[0].ID != "demo-v1-0" || insts[0].Addr != "10.0.0.1:8080" || !insts[0].Ready || insts[0].Meta["zone"] != "a" {
		t.Fatalf("Observe = %+v", insts)
	}
	gets := s.getCount()
	posts := len(s.postsCopy())
	b.Observe(ctx, "demo")
	if s.getCount() != gets+1 || len(s.postsCopy()) != posts {
		t.Fatal("Observe did more than one GET")
	}
}

func TestLyingSystemNeverConverges(t *testing.T) {
	s := newSystem(t)
	s.lie = true
	b := newBackend(t)
	ctx := context.Background()
	rel := s.release(t, "v2", "")
	if err := b.Apply(ctx, rel, traffic.Replicas{"v2": 2}, adapters.NoStep); err != nil {
		t.Fatalf("the lying system acknowledges: %v", err)
	}
	// Observe reports what the system says, not what was asked.
	insts, err := b.Observe(ctx, "demo")
	if err != nil || len(insts) != 2 || insts[0].Version != "v1" {
		t.Fatalf("Observe = %+v, %v; want the two v1 instances the system reports", insts, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = b.WaitConverged(cctx, "demo", traffic.Replicas{"v2": 2})
	if !errors.Is(err, webhook.ErrNotConverged) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrNotConverged and DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "map[v2:2]") || !strings.Contains(err.Error(), "map[v1:2]") {
		t.Fatalf("error does not name wanted and observed counts: %v", err)
	}
}

func TestRetriesFailingSystem(t *testing.T) {
	s := newSystem(t)
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n < 2 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	b := newBackend(t)
	if err := b.Apply(context.Background(), s.release(t, "v2", ""), traffic.Replicas{"v2": 1}, adapters.NoStep); err != nil {
		t.Fatalf("Apply after two 503s: %v", err)
	}
	ps := s.postsCopy()
	if len(ps) != 3 || ps[0].key != ps[2].key {
		t.Fatalf("%d attempts; keys %v", len(ps), ps)
	}
}

func TestFailingSystemGivesUp(t *testing.T) {
	s := newSystem(t)
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "database is on fire", http.StatusInternalServerError)
		return true
	}
	b := newBackend(t)
	err := b.Apply(context.Background(), s.release(t, "v2", "    retries: 2\n"), traffic.Replicas{"v2": 1}, adapters.NoStep)
	var serr *webhook.StatusError
	if !errors.As(err, &serr) || serr.Code != 500 || serr.Attempts != 3 {
		t.Fatalf("err = %v, want a StatusError 500 after 3 attempts", err)
	}
	for _, want := range []string{"app demo", "500 Internal Server Error", "database is on fire", "after 3 attempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := len(s.postsCopy()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
}

func TestRejectionIsNotRetried(t *testing.T) {
	s := newSystem(t)
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, `{"error":"unknown version v2"}`, http.StatusUnprocessableEntity)
		return true
	}
	b := newBackend(t)
	err := b.Apply(context.Background(), s.release(t, "v2", ""), traffic.Replicas{"v2": 1}, adapters.NoStep)
	var serr *webhook.StatusError
	if !errors.As(err, &serr) || serr.Code != 422 || serr.Retriable() || !strings.Contains(err.Error(), "unknown version v2") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.postsCopy()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestSlowSystem(t *testing.T) {
	s := newSystem(t)
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 0 {
			<-r.Context().Done() // hang until graylane gives up
			return true
		}
		return false
	}
	b := newBackend(t)
	rel := s.release(t, "v2", "    timeout: 200ms\n")
	start := time.Now()
	if err := b.Apply(context.Background(), rel, traffic.Replicas{"v2": 1}, adapters.NoStep); err != nil {
		t.Fatalf("Apply after one slow attempt: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("Apply returned after %v, before the first attempt timed out", d)
	}
	if ps := s.postsCopy(); len(ps) != 2 || ps[0].key != ps[1].key {
		t.Fatalf("attempts: %d", len(ps))
	}
	// Always slow: the timeout error surfaces after the retries.
	s.mu.Lock()
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool { <-r.Context().Done(); return true }
	s.mu.Unlock()
	err := b.Apply(context.Background(), s.release(t, "v2", "    timeout: 100ms\n    retries: 1\n"), traffic.Replicas{"v2": 1}, adapters.NoStep)
	if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Fatalf("err = %v", err)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	s := newSystem(t)
	s.onPost = func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "later", http.StatusTooManyRequests)
		return true
	}
	b := newBackend(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Apply(ctx, s.release(t, "v2", ""), traffic.Replicas{"v2": 1}, adapters.NoStep) }()
	testenv.Eventually(t, 5*time.Second, "one POST", func() error {
		return testenv.Check(len(s.postsCopy()) == 1, "%d POSTs", len(s.postsCopy()))
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Apply did not return after cancel (stuck in a 30s Retry-After)")
	}
	cctx, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := b.Observe(cctx, "demo"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Observe with a cancelled ctx: %v", err)
	}
}

func TestBadStatusAndMissingSecret(t *testing.T) {
	s := newSystem(t)
	b := newBackend(t)
	ctx := context.Background()
	rel := s.release(t, "v2", "")
	if err := b.Apply(ctx, rel, traffic.Replicas{"v2": 1}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]string{
		`<html>oops</html>`:              "not a status document",
		`{"app":"other","instances":[]}`: `answered for app "other"`,
		`{"instances":[{"id":"a","version":"v1;rm -rf /","ready":true}]}`: "instances[0].version",
		`{"instances":[{"id":"","version":"v1"}]}`:                        "instances[0].id is empty",
	} {
		s.mu.Lock()
		s.status = body
		s.mu.Unlock()
		if _, err := b.Observe(ctx, "demo"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("status %s: err = %v, want %q", body, err, want)
		}
	}
	nokey, _ := webhook.New(webhook.Config{Getenv: func(string) string { return "" }, Logger: testLogger()})
	if err := nokey.Apply(ctx, rel, traffic.Replicas{"v2": 1}, adapters.NoStep); !errors.Is(err, webhook.ErrNoSecret) {
		t.Fatalf("Apply without a key: %v", err)
	}
}
