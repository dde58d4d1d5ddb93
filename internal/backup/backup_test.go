package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// startEtcd starts an embedded etcd for the test and returns its client.
func startEtcd(t *testing.T) *clientv3.Client {
	t.Helper()
	return etcdtest.Start(t).Client()
}

func put(t *testing.T, cli *clientv3.Client, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if _, err := cli.Put(context.Background(), kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
}

func dump(t *testing.T, cli *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, k := range resp.Kvs {
		m[string(k.Key)] = string(k.Value)
	}
	return m
}

// TestTakeAndRestore: a backup holds exactly the non-leased keys under the
// prefixes, as of one revision; restored into a fresh etcd they read back
// identical; a second restore is refused; overwrite replaces.
func TestTakeAndRestore(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	src := startEtcd(t)
	put(t, src,
		"/graylane/apps/shop", "app: shop\nversion: v2\n",
		"/graylane/state/shop", `{"status":{"phase":"Paused","step":1}}`,
		"/graylane/analysis/shop", `{"runs":3}`,
		"/graylane/config/shop/history/1", "binary\x00value",
		"/other/key", "not graylane's",
	)
	lease, err := src.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Put(ctx, "/graylane/leader/abc", "replica-1", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	a, err := Take(ctx, src, []string{"/graylane/", "/graylane/apps/"}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Entries) != 4 || a.Skipped != 1 || a.Revision == 0 {
		t.Fatalf("archive: %d entries, %d skipped, revision %d; want 4, 1 (the leased leader key), >0: %+v", len(a.Entries), a.Skipped, a.Revision, a.Entries)
	}
	// changes after the backup's revision are not in it
	put(t, src, "/graylane/state/shop", "changed later")

	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	b, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	dst := startEtcd(t)
	n, err := Restore(ctx, dst, b, RestoreOptions{Last: []string{"/graylane/apps/"}})
	if err != nil || n != 4 {
		t.Fatalf("restore: %d keys, %v", n, err)
	}
	got := dump(t, dst, "/")
	want := map[string]string{
		"/graylane/apps/shop":             "app: shop\nversion: v2\n",
		"/graylane/state/shop":            `{"status":{"phase":"Paused","step":1}}`,
		"/graylane/analysis/shop":         `{"runs":3}`,
		"/graylane/config/shop/history/1": "binary\x00value",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored %v\nwant     %v", got, want)
	}
	// the spec went last (or in the same transaction): no key is newer
	resp, _ := dst.Get(ctx, "/", clientv3.WithPrefix())
	var specRev int64
	for _, k := range resp.Kvs {
		if string(k.Key) == "/graylane/apps/shop" {
			specRev = k.ModRevision
		}
	}
	for _, k := range resp.Kvs {
		if k.ModRevision > specRev {
			t.Errorf("%s written after the spec (revision %d > %d)", k.Key, k.ModRevision, specRev)
		}
	}

	if _, err := Restore(ctx, dst, b, RestoreOptions{}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second restore: %v, want ErrNotEmpty", err)
	}
	put(t, dst, "/graylane/state/shop", "edited")
	if n, err := Restore(ctx, dst, b, RestoreOptions{Overwrite: true}); err != nil || n != 4 {
		t.Fatalf("overwrite: %d %v", n, err)
	}
	if v := dump(t, dst, "/graylane/state/shop")["/graylane/state/shop"]; v != want["/graylane/state/shop"] {
		t.Fatalf("after overwrite %q", v)
	}
}

// TestReadRejectsCorruptArchives: a flipped byte, another format or an
// unknown field is refused before anything is written.
func TestReadRejectsCorruptArchives(t *testing.T) {
	a := &Archive{Format: Format, Prefixes: []string{"/graylane/"}, Entries: []Entry{{Key: "/graylane/apps/a", Value: []byte("app: a")}}}
	a.SHA256 = checksum(a.Entries)
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	if _, err := Read(strings.NewReader(good)); err != nil {
		t.Fatalf("a good archive: %v", err)
	}
	for name, bad := range map[string]string{
		"tampered key":  strings.Replace(good, "/graylane/apps/a", "/graylane/apps/b", 1),
		"other format":  strings.Replace(good, Format, "graylane-backup/v9", 1),
		"unknown field": strings.Replace(good, `"format"`, `"extra": 1, "format"`, 1),
		"not JSON":      "snapshot",
	} {
		if _, err := Read(strings.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestRestoreBatches: more keys than one transaction may hold are written
// in several.
func TestRestoreBatches(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	src := startEtcd(t)
	for i := range 250 {
		put(t, src, fmt.Sprintf("/graylane/state/app%03d", i), "x")
	}
	put(t, src, "/graylane/apps/aaa", "app: aaa") // sorts first, must be written last
	a, err := Take(ctx, src, []string{"/graylane/"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dst := startEtcd(t)
	if n, err := Restore(ctx, dst, a, RestoreOptions{Last: []string{"/graylane/apps/"}}); err != nil || n != 251 {
		t.Fatalf("restore: %d %v", n, err)
	}
	if got := len(dump(t, dst, "/graylane/state/")); got != 250 {
		t.Fatalf("%d keys restored", got)
	}
	resp, err := dst.Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var maxRev, specRev int64
	minRev := resp.Header.Revision
	for _, k := range resp.Kvs {
		maxRev, minRev = max(maxRev, k.ModRevision), min(minRev, k.ModRevision)
		if string(k.Key) == "/graylane/apps/aaa" {
			specRev = k.ModRevision
		}
	}
	if specRev != maxRev || maxRev-minRev != 2 {
		t.Fatalf("spec written at revision %d, newest %d, oldest %d: want the spec in the last of 3 transactions", specRev, maxRev, minRev)
	}
}
