package records

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// etcdClient starts an embedded etcd for one integration test.
func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	return etcdtest.Start(t).Client()
}

func TestStoreRetentionDeletionAndSummaries(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdClient(t)
	ctx := context.Background()
	clk := &manual{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := NewStore(StoreConfig{Client: cli, Keep: 3, DeletedRetention: time.Hour, SummaryRetention: 48 * time.Hour, Clock: clock.Func(clk.Now)})
	for n := 1; n <= 5; n++ {
		r := Revision{App: "demo", Number: n, Kind: KindRelease, Version: fmt.Sprintf("v%d", n), StartedAt: clk.Now().Add(time.Duration(n) * time.Hour), Outcome: Promoted}
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	revs, err := s.Revisions(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 3 || revs[0].Number != 5 || revs[2].Number != 3 {
		t.Fatalf("kept %d revisions, newest %d: want 5, 4, 3", len(revs), revs[0].Number)
	}
	if _, err := s.Revision(ctx, "demo", 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("pruned revision 2: err = %v", err)
	}
	if last, _ := s.Last(ctx, "demo"); last != 5 {
		t.Errorf("last = %d", last)
	}
	sums, err := s.Summaries(ctx, clk.Now().Add(3*time.Hour))
	if err != nil || len(sums) != 3 || sums[0].Number != 3 {
		t.Fatalf("summaries since 3h = %v (%v), want 3, 4, 5", sums, err)
	}

	// deleted: kept for DeletedRetention, then gone; summaries age out
	if err := s.MarkDeleted(ctx, "demo", clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Minute)
	if n, err := s.Expire(ctx); err != nil || n != 0 {
		t.Fatalf("expire too early: %d, %v", n, err)
	}
	clk.Add(time.Hour)
	if n, err := s.Expire(ctx); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	if revs, _ := s.Revisions(ctx, "demo"); len(revs) != 0 {
		t.Errorf("revisions of the expired app: %d", len(revs))
	}
	clk.Add(52 * time.Hour) // past the newest summary (started at +5h) plus the retention
	if _, err := s.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if sums, _ := s.Summaries(ctx, time.Time{}); len(sums) != 0 {
		t.Errorf("summaries older than the retention: %d", len(sums))
	}
}

func TestStoreIntentsAndNewerSchema(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdClient(t)
	ctx := context.Background()
	s := NewStore(StoreConfig{Client: cli})
	doc := []byte("app: demo\nversion: v1\n")
	if err := s.PutIntent(ctx, Intent{App: "demo", Digest: DocumentDigest(doc), Actor: "alice", Action: "rollback", RollbackTo: 3}); err != nil {
		t.Fatal(err)
	}
	k := NewKeeper(KeeperConfig{Store: s, Centre: "etcd"})
	c, err := k.Cause(ctx, "demo", Document{Data: doc, Version: "42", Revision: 42})
	if err != nil || c.Kind != CauseAPI || c.Actor != "alice" || c.RollbackTo != 3 || c.DocumentVersion != "42" {
		t.Fatalf("cause = %+v, %v", c, err)
	}
	var edits []string
	k = NewKeeper(KeeperConfig{Store: s, Centre: "etcd", CentreEdit: func(ctx context.Context, app string, c Cause, diff string) error {
		edits = append(edits, diff)
		return nil
	}})
	c, err = k.Cause(ctx, "demo", Document{Data: []byte("app: demo\nversion: v9\n"), Version: "43", Prev: "version: v1\n", Next: "version: v9\n"})
	if err != nil || c.Kind != CauseCentre || len(edits) != 1 || edits[0] == "" {
		t.Fatalf("centre edit: cause %+v err %v edits %q", c, err, edits)
	}

	// a revision written by a newer graylane is refused, not misread
	if _, err := cli.Put(ctx, s.revKey("demo", 1), `{"schema": 99, "app": "demo", "number": 1}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revision(ctx, "demo", 1); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("newer revision: err = %v", err)
	}
	if _, err := s.Revisions(ctx, "demo"); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("newer revision in a list: err = %v", err)
	}
}

// manual is a clock the test moves.
type manual struct{ t time.Time }

func (m *manual) Now() time.Time      { return m.t }
func (m *manual) Add(d time.Duration) { m.t = m.t.Add(d) }
