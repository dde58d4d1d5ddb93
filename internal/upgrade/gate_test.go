package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// rec is a kind that existed before versions: step 0 → 1 renames "n" to
// "count".
var rec = schema.Kind{Name: "rec", What: "test record", Current: 1, Unversioned: 0, Steps: []schema.Step{{
	Change: "n renamed count",
	Up: func(o schema.Object) error {
		if v, ok := o["n"]; ok {
			o["count"] = v
			delete(o, "n")
		}
		return nil
	},
	Down: func(o schema.Object) error {
		if v, ok := o["count"]; ok {
			o["n"] = v
			delete(o, "count")
		}
		return nil
	},
}}}

const (
	recPrefix = "/t/rec/"
	election  = "/t/leader/"
)

func collections() []upgrade.Collection {
	return []upgrade.Collection{{Kind: rec, Prefix: recPrefix, Children: true}}
}

func newGate(t *testing.T, cli *clientv3.Client, id string, mod ...func(*upgrade.Config)) *upgrade.Gate {
	t.Helper()
	cfg := upgrade.Config{Client: cli, Prefix: "/t/upgrade/", ID: id, Release: "test-" + id, Collections: collections(),
		Presence: []string{election}, TTL: 2 * time.Second, Resync: time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	g, err := upgrade.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// run starts g and runs it until the returned stop is called (or t ends).
func run(t *testing.T, g *upgrade.Gate) (stop func()) {
	t.Helper()
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; g.Close() }) }
	t.Cleanup(stop)
	return stop
}

// seed writes n version-0 records (as the release before versions wrote
// them) and a key that is not a record.
func seed(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := cli.Put(ctx, fmt.Sprintf("%sapp-%04d", recPrefix, i), fmt.Sprintf(`{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, recPrefix+"nested/not-a-record", "plain text"); err != nil {
		t.Fatal(err)
	}
}

// versions counts the records under recPrefix per version, checking each
// record's content for its version.
func versions(t *testing.T, cli *clientv3.Client) map[int]int {
	t.Helper()
	resp, err := cli.Get(context.Background(), recPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "nested/") {
			if string(kv.Value) != "plain text" {
				t.Fatalf("a key outside the collection was changed: %s", kv.Value)
			}
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		v, _ := m["schema"].(float64)
		_, hasN, hasCount := m["schema"], m["n"] != nil, m["count"] != nil
		if (v == 0 && (!hasN || hasCount)) || (v == 1 && (hasN || !hasCount)) {
			t.Fatalf("%s at schema %v has the other version's shape: %s", kv.Key, v, kv.Value)
		}
		out[int(v)]++
	}
	return out
}

func storage(t *testing.T, cli *clientv3.Client) upgrade.Storage {
	t.Helper()
	rep, err := upgrade.Inspect(context.Background(), cli, "/t/upgrade/", []string{election})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Storage
}

// campaign holds an election key as a graylane released before versions
// would: lease-bound, its id as the value.
func campaign(t *testing.T, cli *clientv3.Client, id string) (leave func()) {
	t.Helper()
	ctx := context.Background()
	l, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, fmt.Sprintf("%s%x", election, l.ID), id, clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := cli.Revoke(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// Alone on an etcd holding records of the release before versions, a
// graylane raises the version and migrates every record once; a second
// run has nothing to do.
func TestMigratesOnceAlone(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	seed(t, cli, 1200)
	stop := run(t, newGate(t, cli, "a"))
	testenv.Eventually(t, 60*time.Second, "records migrated", func() error {
		st := storage(t, cli)
		return testenv.Check(st.Kinds["rec"] == 1 && st.Migrated["rec"] == 1, "storage %+v", st)
	})
	if got := versions(t, cli); got[1] != 1200 || got[0] != 0 {
		t.Fatalf("versions after the migration: %v", got)
	}
	stop()
	before, _ := cli.Get(context.Background(), recPrefix, clientv3.WithPrefix())
	stop = run(t, newGate(t, cli, "a2"))
	// the second gate has evaluated once Start returned and its first pass ran
	testenv.Eventually(t, 10*time.Second, "second gate sees the versions", func() error {
		rep, err := upgrade.Inspect(context.Background(), cli, "/t/upgrade/", []string{election})
		if err != nil {
			return err
		}
		return testenv.Check(len(rep.Members) == 1 && rep.Members[0].ID == "a2", "members %+v", rep.Members)
	})
	stop()
	after, _ := cli.Get(context.Background(), recPrefix, clientv3.WithPrefix())
	for i, kv := range after.Kvs {
		if kv.ModRevision != before.Kvs[i].ModRevision {
			t.Fatalf("%s rewritten by a second migration", kv.Key)
		}
	}
}

// While an older graylane runs (an election candidate with no member
// record), records stay at version 0 and new writes are version 0 too;
// once it leaves, the version is raised and the records migrated.
func TestWaitsForOlderGraylanes(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	seed(t, cli, 10)
	leave := campaign(t, cli, "old-a")
	g := newGate(t, cli, "new-b")
	run(t, g)
	if _, err := cli.Put(ctx, election+"self", "new-b"); err != nil { // its own candidacy counts as advertised
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the gate says what it waits for", func() error {
		w := strings.Join(g.Waiting(), "; ")
		return testenv.Check(strings.Contains(w, "old-a (a graylane released before schema versions) reads 0") && !strings.Contains(w, "new-b"), "waiting %q", w)
	})
	// a write while the older graylane runs is in its format
	if _, ok, err := g.Put(ctx, cli, rec, recPrefix+"written", []byte(`{"count":7}`), nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	resp, _ := cli.Get(ctx, recPrefix+"written")
	if string(resp.Kvs[0].Value) != `{"n":7}` {
		t.Fatalf("written while an older graylane runs: %s", resp.Kvs[0].Value)
	}
	if st := storage(t, cli); st.Kinds["rec"] != 0 || versions(t, cli)[1] != 0 {
		t.Fatalf("migrated while an older graylane runs: %+v", st)
	}
	leave()
	testenv.Eventually(t, 30*time.Second, "migrated once the older graylane left", func() error {
		st := storage(t, cli)
		return testenv.Check(st.Migrated["rec"] == 1, "storage %+v", st)
	})
	if got := versions(t, cli); got[1] != 11 || got[0] != 0 {
		t.Fatalf("versions: %v", got)
	}
	if _, ok, err := g.Put(ctx, cli, rec, recPrefix+"written", []byte(`{"count":8}`), nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	resp, _ = cli.Get(ctx, recPrefix+"written")
	if string(resp.Kvs[0].Value) != `{"count":8,"schema":1}` {
		t.Fatalf("written after the migration: %s", resp.Kvs[0].Value)
	}
}

// A member reading an older version (a versioned release before this
// one) holds the version back the same way.
func TestWaitsForMembersReadingLess(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	seed(t, cli, 3)
	l, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, fmt.Sprintf("/t/upgrade/members/%x", l.ID), `{"schema":1,"id":"older","release":"v0.9","reads":{"rec":0}}`, clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, cli, "newer")
	run(t, g)
	testenv.Eventually(t, 10*time.Second, "waiting for the older member", func() error {
		w := strings.Join(g.Waiting(), "; ")
		return testenv.Check(strings.Contains(w, "older (v0.9) reads up to 0"), "waiting %q", w)
	})
	if _, err := cli.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "migrated", func() error {
		return testenv.Check(storage(t, cli).Migrated["rec"] == 1, "storage %+v", storage(t, cli))
	})
}

// A graylane that finds records of a newer version in storage refuses to
// start, names them, and leaves no member record behind.
func TestRefusesNewerStorage(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	if _, err := cli.Put(ctx, "/t/upgrade/storage", `{"schema":1,"kinds":{"rec":2},"raisedBy":"x (v2.0.0)"}`); err != nil {
		t.Fatal(err)
	}
	err := newGate(t, cli, "a").Start(ctx)
	if !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("Start = %v", err)
	}
	for _, s := range []string{"this graylane (test-a) cannot run on this etcd", "rec records at schema version 2", "raised by x (v2.0.0)", "reads up to 1"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%q lacks %q", err, s)
		}
	}
	if resp, _ := cli.Get(ctx, "/t/upgrade/members/", clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
		t.Fatalf("a refused graylane left %d member records", resp.Count)
	}
}

// A writer whose view of the storage version is stale (another member
// raised it since) has its write refused by the guard, and writes again at
// the new version: no version-0 record appears after a raise.
func TestStaleWriterWritesTheRaisedVersion(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	leave := campaign(t, cli, "old")
	defer leave()
	g := newGate(t, cli, "w")
	if err := g.Start(ctx); err != nil { // started, not run: its view is never refreshed
		t.Fatal(err)
	}
	defer g.Close()
	if v, _ := g.WriteAt(rec); v != 0 {
		t.Fatalf("writes at %d", v)
	}
	if _, err := cli.Put(ctx, "/t/upgrade/storage", `{"schema":1,"kinds":{"rec":1}}`); err != nil {
		t.Fatal(err)
	}
	_, ok, err := g.Put(ctx, cli, rec, recPrefix+"x", []byte(`{"count":1}`), []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(recPrefix+"x"), "=", 0)})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	resp, _ := cli.Get(ctx, recPrefix+"x")
	if string(resp.Kvs[0].Value) != `{"count":1,"schema":1}` {
		t.Fatalf("stale writer wrote %s", resp.Kvs[0].Value)
	}
	// the caller's own comparison failing is reported as such
	_, ok, err = g.Put(ctx, cli, rec, recPrefix+"x", []byte(`{"count":2}`), []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(recPrefix+"x"), "=", 0)})
	if err != nil || ok {
		t.Fatalf("a failed compare-and-swap: ok %v, %v", ok, err)
	}
}

// Two new graylanes starting together both try to migrate: the mutex lets
// one do it, and every record is rewritten exactly once.
func TestTwoMembersMigrateEachRecordOnce(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli := etcdtest.Start(t).Client()
	const n = 800
	seed(t, cli, n)
	start, _ := cli.Get(ctx, "/")
	writes := map[string]int{}
	var mu sync.Mutex
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for resp := range cli.Watch(ctx, recPrefix, clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1)) {
			mu.Lock()
			for _, ev := range resp.Events {
				writes[string(ev.Kv.Key)]++
			}
			mu.Unlock()
		}
	}()
	run(t, newGate(t, cli, "a"))
	run(t, newGate(t, cli, "b"))
	testenv.Eventually(t, 60*time.Second, "migrated", func() error {
		return testenv.Check(storage(t, cli).Migrated["rec"] == 1, "storage %+v", storage(t, cli))
	})
	// a marker write after the migration: once the watch has seen it, it
	// has seen every migration write before it
	if _, err := cli.Put(ctx, recPrefix+"zz-marker", `{"count":0}`); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the watch caught up", func() error {
		mu.Lock()
		defer mu.Unlock()
		return testenv.Check(writes[recPrefix+"zz-marker"] == 1, "marker not seen yet")
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		k := fmt.Sprintf("%sapp-%04d", recPrefix, i)
		if writes[k] != 1 {
			t.Fatalf("%s written %d times", k, writes[k])
		}
	}
}
