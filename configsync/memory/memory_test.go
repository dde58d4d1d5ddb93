package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/configsync/sourcetest"
)

func harness(t *testing.T) *sourcetest.Harness {
	s := memory.New()
	t.Cleanup(func() { s.Close() })
	return &sourcetest.Harness{
		Source:  s,
		Writer:  s,
		Publish: func(_ testing.TB, app string, data []byte) { s.Set(app, data) },
		Remove:  func(_ testing.TB, app string) { s.Remove(app) },
		Fetch: func(_ testing.TB, app string) ([]byte, bool) {
			e, err := s.Get(context.Background(), app)
			return e.Data, err == nil
		},
		Cut: func(testing.TB) func() {
			s.SetAvailable(false)
			return func() { s.SetAvailable(true) }
		},
		CutReported: true,
		Settle:      50 * time.Millisecond,
		Eventually:  5 * time.Second,
	}
}

func TestConformance(t *testing.T) { sourcetest.Run(t, harness) }

func TestCompactedResumeSendsReset(t *testing.T) {
	s := memory.New()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Set("a", []byte("1"))
	s.Set("gone", []byte("1"))
	from := s.Revision()
	s.Set("a", []byte("2"))
	s.Set("b", []byte("1"))
	s.Remove("gone")
	s.Compact(s.Revision())

	held := configsync.NewState()
	held.Apply(configsync.WatchResponse{Reset: true, Revision: from, Events: []configsync.Event{
		{Entry: configsync.Entry{App: "a", Data: []byte("1")}},
		{Entry: configsync.Entry{App: "gone", Data: []byte("1")}},
	}})
	c := sourcetest.CollectFrom(t, s.Watch(ctx, from), held)
	c.WaitResponses(t, 1, 5*time.Second)
	first := c.Responses()[0]
	if !first.Reset || first.Revision != s.Revision() {
		t.Fatalf("first response after compaction = %+v, want a Reset at revision %d", first, s.Revision())
	}
	st := c.State()
	if e, _ := st.Get("a"); string(e.Data) != "2" {
		t.Errorf("a = %q, want 2", e.Data)
	}
	if _, ok := st.Get("b"); !ok {
		t.Error("b missing")
	}
	if _, ok := st.Get("gone"); ok {
		t.Error("gone still present")
	}
}

func TestLiveWatcherOvertakenByCompactionGetsReset(t *testing.T) {
	s := memory.New()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Set("a", []byte("1"))
	c := sourcetest.Collect(t, s.Watch(ctx, 0))
	c.WaitData(t, "a", []byte("1"), 5*time.Second)
	// While the watcher is parked by an outage, history it has not seen is
	// compacted away.
	s.SetAvailable(false)
	c.WaitErr(t, 5*time.Second)
	s.Set("a", []byte("2"))
	s.Set("b", []byte("1"))
	s.Compact(s.Revision())
	s.SetAvailable(true)
	c.WaitData(t, "b", []byte("1"), 5*time.Second)
	rs := c.Responses()
	if last := rs[len(rs)-1]; !last.Reset || last.Err != nil || last.Revision != s.Revision() {
		t.Fatalf("response after the compaction = %+v, want a Reset at revision %d", last, s.Revision())
	}
	if e, _ := c.Get("a"); string(e.Data) != "2" {
		t.Fatalf("a = %q after the Reset, want 2", e.Data)
	}
}

func TestUnavailable(t *testing.T) {
	s := memory.New()
	defer s.Close()
	ctx := context.Background()
	s.SetAvailable(false)
	if _, err := s.Get(ctx, "a"); !errors.Is(err, configsync.ErrUnavailable) {
		t.Errorf("Get: %v", err)
	}
	if _, _, err := s.List(ctx); !errors.Is(err, configsync.ErrUnavailable) {
		t.Errorf("List: %v", err)
	}
	if _, err := s.Put(ctx, "a", nil, ""); !errors.Is(err, configsync.ErrUnavailable) {
		t.Errorf("Put: %v", err)
	}
	if err := s.Healthy(ctx); !errors.Is(err, configsync.ErrUnavailable) {
		t.Errorf("Healthy: %v", err)
	}
	s.SetAvailable(true)
	if err := s.Healthy(ctx); err != nil {
		t.Errorf("Healthy after recovery: %v", err)
	}
}

func TestCloseEndsWatches(t *testing.T) {
	s := memory.New()
	c := sourcetest.Collect(t, s.Watch(context.Background(), 0))
	c.WaitResponses(t, 1, 5*time.Second)
	s.Close()
	c.WaitClosed(t, 5*time.Second)
	if _, err := s.Get(context.Background(), "a"); !errors.Is(err, configsync.ErrUnavailable) {
		t.Errorf("Get after Close: %v", err)
	}
}
