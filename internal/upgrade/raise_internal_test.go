package upgrade

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// A graylane that joins between the snapshot a raise was decided on and
// the raise itself makes the raise fail, whether it advertises itself or
// is an older graylane that only campaigns: no version is raised past a
// member that was not counted.
func TestRaiseFailsWhenSomeoneJoinedMeanwhile(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	kind := schema.Kind{Name: "rec", What: "rec", Current: 1, Steps: []schema.Step{{}}}
	g, err := New(Config{Client: cli, Prefix: "/t/upgrade/", ID: "a", Release: "r",
		Collections: []Collection{{Kind: kind, Prefix: "/t/rec/"}}, Presence: []string{"/t/leader/"}, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, join := range []struct{ key, value string }{
		{"/t/leader/694d", "older-b"},
		{"/t/upgrade/members/694e", `{"schema":1,"id":"c","release":"r0","reads":{"rec":0}}`},
	} {
		s, err := read(ctx, cli, "/t/upgrade/", []string{"/t/leader/"})
		if err != nil {
			t.Fatal(err)
		}
		d := Decide(g.view(s))
		if d.Raise["rec"] != 1 {
			t.Fatalf("decision before %s joined: %+v", join.value, d)
		}
		if _, err := cli.Put(ctx, join.key, join.value); err != nil {
			t.Fatal(err)
		}
		if _, err := g.raise(ctx, s, d.Raise); err == nil {
			t.Fatalf("raised although %s joined", join.value)
		}
		resp, _ := cli.Get(ctx, "/t/upgrade/storage")
		if len(resp.Kvs) != 0 {
			t.Fatalf("storage written: %s", resp.Kvs[0].Value)
		}
		if _, err := cli.Delete(ctx, join.key); err != nil {
			t.Fatal(err)
		}
	}
	// with nobody joining, the same raise goes through
	s, err := read(ctx, cli, "/t/upgrade/", []string{"/t/leader/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.raise(ctx, s, map[string]int{"rec": 1}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := cli.Get(ctx, "/t/upgrade/storage", clientv3.WithCountOnly()); resp.Count != 1 {
		t.Fatal("storage not written")
	}
}
