package etcdstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func schemaOf(t *testing.T, cli *clientv3.Client, key string) (int, map[string]any) {
	t.Helper()
	resp, err := cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("get %s: %v", key, err)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		t.Fatal(err)
	}
	v, _ := m["schema"].(float64)
	return int(v), m
}

// Records of the release before versions are read (the legacy
// status.fast as a rollback), saved at the current version without a
// Gate, and at version 0 through a Gate while an older graylane runs;
// records of a newer graylane are refused by Load, skipped by the list,
// and never written over.
func TestStoreReadsOlderAndRefusesNewerRecords(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	st := etcdstore.New(cli, "/gl/state/")
	v0 := `{"spec":{"app":"old"},"status":{"phase":"Progressing","stableVersion":"v2","canaryVersion":"v1","fast":true},"updatedAt":"2026-01-02T03:04:05Z"}`
	if _, err := cli.Put(ctx, "/gl/state/old", v0); err != nil {
		t.Fatal(err)
	}
	rec, rev, err := st.Load(ctx, "old")
	if err != nil || !rec.Status.Rollback || rec.Status.CanaryVersion != "v1" {
		t.Fatalf("Load of a version-0 record: %+v, %v", rec.Status, err)
	}
	if _, err := st.Save(ctx, "old", rec, rev); err != nil {
		t.Fatal(err)
	}
	if v, m := schemaOf(t, cli, "/gl/state/old"); v != 1 || m["status"].(map[string]any)["rollback"] != true {
		t.Fatalf("saved as %v", m)
	}

	newer := `{"schema":2,"status":{"phase":"Healthy","stableVersion":"v9"}}`
	if _, err := cli.Put(ctx, "/gl/state/new", newer); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Load(ctx, "new"); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("Load of a newer record: %v", err)
	}
	var listed []string
	if _, err := st.ListRecords(ctx, func(app string, _ engine.Record, _ int64) { listed = append(listed, app) }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != "old" {
		t.Fatalf("listed %v", listed)
	}
	// an engine pass never saves a record it could not load; a blind save
	// (revision 0: create) fails too
	if _, err := st.Save(ctx, "new", engine.Record{}, 0); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("save over a newer record: %v", err)
	}
	if resp, _ := cli.Get(ctx, "/gl/state/new"); string(resp.Kvs[0].Value) != newer {
		t.Fatalf("newer record changed: %s", resp.Kvs[0].Value)
	}

	// with a Gate while an older graylane campaigns: version 0 on the wire
	l, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/gl/leader/1", "old-graylane", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	gated := etcdstore.Open(etcdstore.Config{Client: cli, Prefix: "/gl/state/"})
	g, err := upgrade.New(upgrade.Config{Client: cli, Prefix: "/gl/upgrade/", ID: "new", Release: "test",
		Collections: []upgrade.Collection{gated.Collection()}, Presence: []string{"/gl/leader/"}, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gated = etcdstore.Open(etcdstore.Config{Client: cli, Prefix: "/gl/state/", Gate: g})
	rec, rev, err = gated.Load(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	rec.Status.Message = "written while an older graylane runs"
	if _, err := gated.Save(ctx, "old", rec, rev); err != nil {
		t.Fatal(err)
	}
	if v, m := schemaOf(t, cli, "/gl/state/old"); v != 0 || m["schema"] != nil || m["status"].(map[string]any)["rollback"] != true {
		t.Fatalf("saved through the gate as %v", m)
	}
}

// Fenced saves (ha.mode shard) carry the schema version like Save: the
// current one without a Gate, version 0 through a Gate while an older
// graylane runs; a lost fence is ErrFenced, a lost revision ErrConflict.
func TestFencedSaveWritesTheSchemaVersion(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	own, err := cli.Put(ctx, "/gl/shard/owners/shop", "a")
	if err != nil {
		t.Fatal(err)
	}
	f := engine.Fence{Key: "/gl/shard/owners/shop", Token: own.Header.Revision, Holder: "a"}
	st := etcdstore.New(cli, "/gl/state/")
	rev, err := st.SaveFenced(ctx, "shop", engine.Record{Driver: "a"}, 0, f)
	if err != nil {
		t.Fatal(err)
	}
	if v, m := schemaOf(t, cli, "/gl/state/shop"); v != engine.RecordKind().Current || m["driver"] != "a" {
		t.Fatalf("fenced save without a gate wrote %v", m)
	}

	l, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/gl/leader/1", "old-graylane", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	g, err := upgrade.New(upgrade.Config{Client: cli, Prefix: "/gl/upgrade/", ID: "new", Release: "test",
		Collections: []upgrade.Collection{st.Collection()}, Presence: []string{"/gl/leader/"}, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gated := etcdstore.Open(etcdstore.Config{Client: cli, Prefix: "/gl/state/", Gate: g})
	if rev, err = gated.SaveFenced(ctx, "shop", engine.Record{Driver: "a"}, rev, f); err != nil {
		t.Fatal(err)
	}
	if v, m := schemaOf(t, cli, "/gl/state/shop"); v != 0 || m["schema"] != nil {
		t.Fatalf("fenced save through the gate while an older graylane runs wrote %v", m)
	}
	if _, err := gated.SaveFenced(ctx, "shop", engine.Record{Driver: "a"}, rev-1, f); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("fenced save at a stale revision: %v", err)
	}
	if _, err := cli.Delete(ctx, f.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := gated.SaveFenced(ctx, "shop", engine.Record{Driver: "a"}, rev, f); !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("fenced save without the ownership key: %v", err)
	}
}
