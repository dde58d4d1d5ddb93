package configrelease_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// Version step 0 → 1 of config state records (with a write intent in
// flight) and history entries: records written by the release before
// versions are read as they were and saved back at version 1; records of a
// newer graylane are refused, not misread.
func TestConfigRecordsSchemaStep0To1(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	for _, k := range []schema.Kind{configrelease.StateKind(), configrelease.HistoryKind()} {
		if err := k.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	s := configrelease.NewEtcdStore(cli, "/gl/config/")
	v0State := `{"applied":{"etcd:/config/shop/app.yaml":{"placement":{"centre":"etcd","key":"/config/shop/app.yaml"},"identity":"v1","sha256":"aa","verified":true,"at":"2026-01-02T03:04:05Z"}},` +
		`"txn":{"id":"t1","startedAt":"2026-01-02T03:04:05Z","from":{"stableIdentity":"v1"},"to":{"stableIdentity":"v1","grayIdentity":"v2","grayDigest":"bb"},"ops":[{"key":"/config/shop/app.yaml@v2","placement":{"centre":"etcd"},"sha256":"bb"}]},` +
		`"layout":{"stableIdentity":"v1","stableDigest":"aa"}}`
	v0History := `{"app":"shop","identity":"v2","version":"v2","bundle":{"digest":"bb"},"boundAt":"2026-01-02T03:04:05Z","events":[{"at":"2026-01-02T03:04:06Z","kind":"gray"}]}`
	if _, err := cli.Put(ctx, "/gl/config/state/shop", v0State); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/gl/config/history/shop/v2", v0History); err != nil {
		t.Fatal(err)
	}
	st, err := s.LoadState(ctx, "shop")
	if err != nil || st.Txn == nil || st.Txn.ID != "t1" || len(st.Txn.Ops) != 1 || st.Layout.StableIdentity != "v1" || !st.Applied["etcd:/config/shop/app.yaml"].Verified {
		t.Fatalf("state read as %+v, %v", st, err)
	}
	if err := s.SaveState(ctx, "shop", st); err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.Entry(ctx, "shop", "v2")
	if err != nil || !ok || e.Version != "v2" || len(e.Events) != 1 {
		t.Fatalf("history entry read as %+v, %v", e, err)
	}
	if err := s.PutEntry(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"/gl/config/state/shop", "/gl/config/history/shop/v2"} {
		resp, _ := cli.Get(ctx, key)
		var m map[string]any
		if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil || m["schema"] != 1.0 {
			t.Fatalf("%s saved as %s", key, resp.Kvs[0].Value)
		}
	}
	st2, err := s.LoadState(ctx, "shop")
	if err != nil || st2.Txn.ID != "t1" {
		t.Fatalf("state after the round trip %+v, %v", st2, err)
	}

	if _, err := cli.Put(ctx, "/gl/config/state/cart", `{"schema":2,"layout":{}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadState(ctx, "cart"); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("newer state: %v", err)
	}
	if _, err := cli.Put(ctx, "/gl/config/history/cart/v1", `{"schema":2,"app":"cart"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.History(ctx, "cart"); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("newer history: %v", err)
	}
}
