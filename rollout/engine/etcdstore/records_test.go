package etcdstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// ListRecords reads every record across several pages at one revision,
// skipping keys that are not records (the analysis journal shares the
// parent prefix), and WatchRecords then reports saves and deletes after
// that revision, with the record's mod revision.
func TestListThenWatchRecords(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli := etcdtest.Start(t).Client()
	st := etcdstore.New(cli, "/gl/state/")
	const n = 1234 // more than two pages
	revs := map[string]int64{}
	for i := 0; i < n; i++ {
		app := fmt.Sprintf("app-%04d", i)
		rev, err := st.Save(ctx, app, engine.Record{Status: rollout.Status{Phase: rollout.Healthy, StableVersion: "v1"}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		revs[app] = rev
	}
	if _, err := cli.Put(ctx, "/gl/state/nested/key", "{}"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/gl/stateful", "{}"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	at, err := st.ListRecords(ctx, func(app string, rec engine.Record, rev int64) {
		if rec.Status.StableVersion != "v1" {
			t.Errorf("%s: record %+v", app, rec.Status)
		}
		seen[app] = rev
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("listed %d records, want %d", len(seen), n)
	}
	for app, rev := range revs {
		if seen[app] != rev {
			t.Fatalf("%s listed at revision %d, saved at %d", app, seen[app], rev)
		}
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ch := st.WatchRecords(wctx, at)
	rev, err := st.Save(ctx, "app-0001", engine.Record{Status: rollout.Status{Phase: rollout.Progressing, CanaryVersion: "v2"}}, revs["app-0001"])
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "app-0002", revs["app-0002"]); err != nil {
		t.Fatal(err)
	}
	got := wait(t, ch, "the save")
	if got.App != "app-0001" || got.Deleted || got.Rev != rev || got.Record.Status.CanaryVersion != "v2" {
		t.Fatalf("first change = %+v", got)
	}
	got = wait(t, ch, "the delete")
	if got.App != "app-0002" || !got.Deleted {
		t.Fatalf("second change = %+v", got)
	}
	wcancel()
	for c := range ch {
		if c.Err != nil {
			t.Fatalf("a cancelled watch reported %v", c.Err)
		}
	}
}
