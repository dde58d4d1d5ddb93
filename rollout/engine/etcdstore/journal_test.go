package etcdstore_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout/analysis"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// deleteSignal reports the journal's deletes.
type deleteSignal struct {
	analysis.Journal
	deleted chan string
}

func (d deleteSignal) Delete(ctx context.Context, app string) error {
	err := d.Journal.Delete(ctx, app)
	d.deleted <- app
	return err
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A restarted graylane continues a running analysis from the results in
// etcd: a failure streak keeps its length (here 2 failures before the
// "crash", 3 after the first round of the new runner), results of another
// analysis are not restored, and the entry goes when the analysis ends.
func TestJournalKeepsAnalysisAcrossRestart(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli := etcdtest.Start(t).Client()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer failing.Close()

	journal := deleteSignal{etcdstore.NewJournal(cli, ""), make(chan string, 4)}
	log := slog.New(slog.DiscardHandler)
	rel := &spec.Release{App: "demo", Strategy: spec.Strategy{Analysis: &spec.Analysis{
		Interval: spec.D(200 * time.Millisecond),
		Checks:   []spec.Check{{Name: "errors", HTTP: &spec.HTTPCheck{URL: failing.URL + "/"}}},
	}}}

	notified := make(chan string, 16)
	first := analysis.New(analysis.Config{Notify: func(app string) { notified <- app }, Logger: log, Journal: journal})
	first.Ensure(rel, "v1", "v2")
	wait(t, notified, "round 1")
	wait(t, notified, "round 2")
	before := first.Results("demo")["errors"]
	first.Close() // the process goes away; the entry stays
	if len(before.Runs) != 2 || before.Runs[1].OK {
		t.Fatalf("before the restart: %+v", before)
	}
	if b, err := journal.Load(ctx, "demo"); err != nil || b == nil {
		t.Fatalf("journal after Close: %q, %v", b, err)
	}

	notified = make(chan string, 16)
	second := analysis.New(analysis.Config{Notify: func(app string) { notified <- app }, Logger: log, Journal: journal})
	defer second.Close()
	second.Ensure(rel, "v1", "v2")
	wait(t, notified, "restore")
	restored := second.Results("demo")["errors"]
	if len(restored.Runs) < 2 || !restored.Runs[0].At.Equal(before.Runs[0].At) || !restored.Runs[1].At.Equal(before.Runs[1].At) || restored.Version != "v2" {
		t.Fatalf("restored %+v, want the 2 runs of before the restart first", restored)
	}
	wait(t, notified, "first round after the restart")
	if got := second.Results("demo")["errors"]; len(got.Runs) < 3 || got.Runs[2].OK {
		t.Fatalf("after the restart: %+v, want the streak at 3 failures", got)
	}

	// another analysis (a new canary version) starts from zero
	second.Ensure(rel, "v1", "v3")
	for {
		wait(t, notified, "round for v3") // (or a last one of v2's, cancelled meanwhile)
		got := second.Results("demo")["errors"]
		if got.Version != "v3" {
			continue
		}
		if len(got.Runs) != 1 {
			t.Fatalf("v3: %+v, want a fresh history", got)
		}
		break
	}

	second.Stop("demo")
	wait(t, journal.deleted, "the entry deleted")
	if b, err := journal.Load(ctx, "demo"); err != nil || b != nil {
		t.Fatalf("journal after Stop: %q, %v", b, err)
	}
}
