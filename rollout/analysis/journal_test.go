package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// Version step 0 → 1 of journal entries: the entry is the same, with the
// version; a newer entry is refused.
func TestJournalSchemaStep0To1(t *testing.T) {
	k := JournalKind()
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	v0 := `{"key":"abc","results":{"smoke":{"version":"v2","runs":[{"at":"2026-01-02T03:04:05Z","ok":false,"message":"503"}]}}}`
	v1, from, err := k.Convert([]byte(v0), 1)
	if err != nil || from != 0 {
		t.Fatal(from, err)
	}
	var e struct {
		Schema int `json:"schema"`
		entry
	}
	if err := json.Unmarshal(v1, &e); err != nil || e.Schema != 1 || e.Key != "abc" || len(e.Results["smoke"].Runs) != 1 || e.Results["smoke"].Runs[0].Message != "503" {
		t.Fatalf("migrated %s: %+v %v", v1, e, err)
	}
	back, err := k.Encode(v1, 0)
	if err != nil || string(back) == string(v1) {
		t.Fatalf("version 0 encoding %s, %v", back, err)
	}
	if _, _, err := k.Decode([]byte(`{"schema":2,"key":"abc"}`)); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("newer: %v", err)
	}
}

// memJournal is a Journal in memory that records saves.
type memJournal struct {
	mu    sync.Mutex
	data  map[string][]byte
	saves chan string
}

func (m *memJournal) Load(_ context.Context, app string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[app], nil
}

func (m *memJournal) Save(_ context.Context, app string, b []byte) error {
	m.mu.Lock()
	m.data[app] = b
	m.mu.Unlock()
	m.saves <- app
	return nil
}

func (m *memJournal) Delete(_ context.Context, app string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, app)
	return nil
}

// A runner finding a journal entry of a newer graylane counts from zero
// and never writes over the entry; an entry of the release before
// versions is restored and written back at version 1.
func TestRunnerAndJournalVersions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	rel := &spec.Release{App: "demo", Strategy: spec.Strategy{Analysis: &spec.Analysis{
		Interval: spec.D(50 * time.Millisecond),
		Checks:   []spec.Check{{Name: "up", HTTP: &spec.HTTPCheck{URL: srv.URL}}},
	}}}
	rounds := make(chan string, 100)

	newer := []byte(`{"schema":2,"key":"whatever","results":{}}`)
	j := &memJournal{data: map[string][]byte{"demo": newer}, saves: make(chan string, 100)}
	r := New(Config{Journal: j, Notify: func(app string) { rounds <- app }})
	r.Ensure(rel, "v1", "v2")
	for range 3 {
		select {
		case <-rounds:
		case <-time.After(10 * time.Second):
			t.Fatal("no round of checks")
		}
	}
	if got := len(r.Results("demo")["up"].Runs); got < 3 {
		t.Fatalf("%d runs counted", got)
	}
	r.Close()
	select {
	case <-j.saves:
		t.Fatal("a newer journal entry was written over")
	default:
	}
	if string(j.data["demo"]) != string(newer) {
		t.Fatalf("entry now %s", j.data["demo"])
	}

	// the release before versions wrote the same entry without "schema":
	// take one this runner wrote and encode it at version 0
	j2 := &memJournal{data: map[string][]byte{}, saves: make(chan string, 100)}
	r2 := New(Config{Journal: j2})
	r2.Ensure(rel, "v1", "v2")
	select {
	case <-j2.saves:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing journaled")
	}
	r2.Close()
	cur := j2.data["demo"]
	old, err := JournalKind().Encode(cur, 0)
	if err != nil {
		t.Fatal(err)
	}
	var o map[string]any
	if err := json.Unmarshal(old, &o); err != nil || o["schema"] != nil {
		t.Fatalf("version 0 entry %s", old)
	}
	j3 := &memJournal{data: map[string][]byte{"demo": old}, saves: make(chan string, 100)}
	r3 := New(Config{Journal: j3})
	r3.Ensure(rel, "v1", "v2")
	select {
	case <-j3.saves:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing journaled after restoring")
	}
	r3.Close()
	var e struct {
		Schema  int                            `json:"schema"`
		Results map[string]rollout.CheckResult `json:"results"`
	}
	if err := json.Unmarshal(j3.data["demo"], &e); err != nil || e.Schema != 1 || len(e.Results["up"].Runs) < 2 {
		t.Fatalf("after restoring a version-0 entry: %s (%v)", j3.data["demo"], err)
	}
}
