package upgrade_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// dyingKV lets the first n transactions writing records through and then
// hangs every later one, as a graylane frozen (and about to be killed)
// mid-migration.
type dyingKV struct {
	clientv3.KV
	n      int64
	writes atomic.Int64
	dead   chan struct{}
}

func (d *dyingKV) Txn(ctx context.Context) clientv3.Txn { return &dyingTxn{Txn: d.KV.Txn(ctx), d: d} }

type dyingTxn struct {
	clientv3.Txn
	d      *dyingKV
	record bool
}

func (t *dyingTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }
func (t *dyingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}
func (t *dyingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		if op.IsPut() && strings.HasPrefix(string(op.KeyBytes()), recPrefix) {
			t.record = true
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}
func (t *dyingTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.record && t.d.writes.Add(1) > t.d.n {
		<-t.d.dead
		return nil, errors.New("killed")
	}
	return t.Txn.Commit()
}

// A graylane killed in the middle of a migration (it froze after 4
// transactions of 64 records, 256 of 1000, while holding the migration
// mutex; then its lease expired) leaves records of both versions, all
// readable; another member takes the mutex when the lease is gone,
// finishes, and no record is rewritten twice.
func TestKilledMidMigrationAnotherMemberFinishes(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	e := etcdtest.Start(t)
	cli := e.Client()
	const n = 1000
	seed(t, cli, n)

	frozen := e.NewClient(t)
	dying := &dyingKV{KV: frozen.KV, n: 4, dead: make(chan struct{})}
	frozen.KV = dying
	var once sync.Once
	kill := func() { once.Do(func() { close(dying.dead) }) }
	t.Cleanup(kill)
	a := newGate(t, frozen, "a")
	run(t, a)
	testenv.Eventually(t, 60*time.Second, "a froze mid-migration", func() error {
		return testenv.Check(dying.writes.Load() > 4, "%d transactions", dying.writes.Load())
	})
	got := versions(t, cli)
	if got[0] != n-256 || got[1] != 256 {
		t.Fatalf("after the freeze: %v", got)
	}
	if st := storage(t, cli); st.Kinds["rec"] != 1 || st.Migrated["rec"] == 1 {
		t.Fatalf("storage after the freeze: %+v", st)
	}
	// a member of the same release started now waits for the mutex
	b := newGate(t, cli, "b")
	run(t, b)
	// kill -9 of a: its lease expires (revoked here rather than waited for)
	rep, err := upgrade.Inspect(ctx, cli, "/t/upgrade/", nil)
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	members, _ := cli.Get(ctx, "/t/upgrade/members/", clientv3.WithPrefix())
	for _, kv := range members.Kvs {
		if strings.Contains(string(kv.Value), `"id":"a"`) {
			lease, err := strconv.ParseInt(strings.TrimPrefix(string(kv.Key), "/t/upgrade/members/"), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if !killed {
		t.Fatalf("no member record of a among %+v", rep.Members)
	}
	testenv.Eventually(t, 60*time.Second, "b finished the migration", func() error {
		st := storage(t, cli)
		return testenv.Check(st.Migrated["rec"] == 1, "storage %+v", st)
	})
	if got := versions(t, cli); got[1] != n || got[0] != 0 {
		t.Fatalf("after b: %v", got)
	}
	kill()
	// every record was written once by the migration: its version is the
	// record's second (seeded, then migrated)
	resp, _ := cli.Get(ctx, recPrefix+"app-", clientv3.WithPrefix())
	for _, kv := range resp.Kvs {
		if kv.Version != 2 {
			t.Fatalf("%s written %d times", kv.Key, kv.Version)
		}
	}
}

// Migrate stopped by an error part-way through (etcd fails it after 2
// transactions of 64 records) is resumed by running it again; a third run
// finds nothing to do.
func TestMigrateResumes(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	const n = 300
	seed(t, cli, n)
	c := collections()[0]
	broken := &failingKV{KV: cli.KV, left: 2}
	first, err := upgrade.Migrate(ctx, broken, c, 1, nil)
	done := int64(versions(t, cli)[1])
	if err == nil || done != 128 || first.Migrated != 128 {
		t.Fatalf("first run: %+v, %v (records at 1: %d)", first, err, done)
	}
	st, err := upgrade.Migrate(ctx, cli, c, 1, nil)
	if err != nil || st.Migrated != n-done || st.Current != done {
		t.Fatalf("second run: %+v, %v", st, err)
	}
	st, err = upgrade.Migrate(ctx, cli, c, 1, nil)
	if err != nil || st.Migrated != 0 || st.Current != n {
		t.Fatalf("third run: %+v, %v", st, err)
	}
}

// failingKV lets the first left transactions commit and fails every later
// one, once those have finished (so exactly left transactions land).
type failingKV struct {
	clientv3.KV
	mu      sync.Mutex
	left    int
	landing sync.WaitGroup
}

func (f *failingKV) Txn(ctx context.Context) clientv3.Txn {
	return &failingTxn{Txn: f.KV.Txn(ctx), f: f}
}

type failingTxn struct {
	clientv3.Txn
	f *failingKV
}

func (t *failingTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *failingTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *failingTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }
func (t *failingTxn) Commit() (*clientv3.TxnResponse, error) {
	t.f.mu.Lock()
	ok := t.f.left > 0
	if ok {
		t.f.left--
		t.f.landing.Add(1)
	}
	t.f.mu.Unlock()
	if !ok {
		t.f.landing.Wait()
		return nil, errors.New("etcd unreachable")
	}
	defer t.f.landing.Done()
	return t.Txn.Commit()
}
