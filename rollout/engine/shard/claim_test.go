package shard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func appNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("app-%04d", i)
	}
	return out
}

// ownerOf reads an ownership key: its holder and create revision ("" when
// absent).
func ownerOf(t *testing.T, cli *clientv3.Client, s *Shard, app string) (string, int64) {
	t.Helper()
	resp, err := cli.Get(context.Background(), s.ownerKey(app))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision
}

// Claim takes many apps in batches of at most 127 (etcd's default max-txn-ops is 128): the
// free ones become this replica's with fences equal to their keys' create
// revisions; those another replica holds stay its (partial success, not a
// failed batch); those already held are not reported again; fenced writes
// work with the fences it gives and fail with the loser's.
func TestClaimTakesFreeAppsInBatches(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	a, b := join(t, cli, "a"), join(t, cli, "b")
	seesMembers(t, 2, a, b)

	apps := appNames(300) // three batches
	byB := map[string]engine.Fence{}
	for _, app := range []string{apps[0], apps[126], apps[127], apps[299], apps[200]} {
		f, err := b.Acquire(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		byB[app] = f
	}
	alreadyA := apps[5]
	fa5, err := a.Acquire(ctx, alreadyA)
	if err != nil {
		t.Fatal(err)
	}

	// duplicates are claimed once (etcd refuses a key put twice in a txn)
	taken, err := a.Claim(ctx, append(append([]string(nil), apps...), apps[10], apps[10]))
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if want := len(apps) - len(byB) - 1; len(taken) != want {
		t.Fatalf("a took %d apps, want %d", len(taken), want)
	}
	tokens := map[int64]int{}
	for _, app := range taken {
		if _, ok := byB[app]; ok || app == alreadyA {
			t.Fatalf("a reports %s as taken", app)
		}
		f, ok := a.Held(app)
		if !ok {
			t.Fatalf("a took %s but does not hold it", app)
		}
		holder, crev := ownerOf(t, cli, a.Shard, app)
		if holder != "a" || f.Holder != "a" || f.Token != crev || f.Key != a.ownerKey(app) {
			t.Fatalf("%s: fence %+v, key held by %q at create revision %d", app, f, holder, crev)
		}
		tokens[f.Token]++
	}
	if len(tokens) != 3 {
		t.Fatalf("%d distinct tokens for 3 batches: %v", len(tokens), tokens)
	}
	for tok, n := range tokens {
		if n > DefaultClaimBatch || tok <= fa5.Token {
			t.Fatalf("batch at revision %d took %d apps (max %d; a's earlier token %d)", tok, n, DefaultClaimBatch, fa5.Token)
		}
	}
	if f, _ := a.Held(alreadyA); f != fa5 {
		t.Fatalf("%s held before the claim: fence %+v, was %+v", alreadyA, f, fa5)
	}
	for app, fb := range byB {
		if holder, crev := ownerOf(t, cli, a.Shard, app); holder != "b" || crev != fb.Token {
			t.Fatalf("%s: key held by %q at %d after a's claim, want b at %d", app, holder, crev, fb.Token)
		}
		if _, held := a.Held(app); held {
			t.Fatalf("a holds %s, which b holds", app)
		}
	}
	if again, err := a.Claim(ctx, apps); err != nil || len(again) != 0 {
		t.Fatalf("claiming held apps again: took %v, %v", again, err)
	}
	if lost, err := b.Claim(ctx, apps); err != nil || len(lost) != 0 {
		t.Fatalf("b claimed apps a holds: %v, %v", lost, err)
	}
	if _, err := b.Acquire(ctx, taken[0]); !errors.Is(err, engine.ErrHeldElsewhere) {
		t.Fatalf("b acquired %s after a claimed it: %v", taken[0], err)
	}

	// the fences guard writes exactly as Acquire's do
	store := etcdstore.New(cli, "")
	app := taken[0]
	fa, _ := a.Held(app)
	rev, err := store.SaveFenced(ctx, app, engine.Record{Driver: "a"}, 0, fa)
	if err != nil {
		t.Fatalf("save fenced by a claimed fence: %v", err)
	}
	if err := a.Release(ctx, app); err != nil {
		t.Fatal(err)
	}
	took, err := b.Claim(ctx, []string{app})
	if err != nil || len(took) != 1 {
		t.Fatalf("b claims the released %s: %v, %v", app, took, err)
	}
	fb, _ := b.Held(app)
	if fb.Token <= fa.Token {
		t.Fatalf("new owner's token %d is not above the old one's %d", fb.Token, fa.Token)
	}
	if _, err := store.SaveFenced(ctx, app, engine.Record{Driver: "a"}, rev, fa); !errors.Is(err, engine.ErrFenced) {
		t.Fatalf("a write fenced by a's old token: %v, want ErrFenced", err)
	}
	if _, err := store.SaveFenced(ctx, app, engine.Record{Driver: "b"}, rev, fb); err != nil {
		t.Fatalf("save fenced by b's claimed fence: %v", err)
	}
}

// Two replicas claiming the same apps at once split them: every app is
// taken by exactly one, and each holds what etcd says it holds.
func TestClaimIsExclusive(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	a, b := join(t, cli, "a"), join(t, cli, "b")
	seesMembers(t, 2, a, b)
	apps := appNames(600)
	rev := append([]string(nil), apps...)
	sort.Sort(sort.Reverse(sort.StringSlice(rev))) // meet in the middle, batch by batch

	var wg sync.WaitGroup
	var tookA, tookB []string
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); tookA, errA = a.Claim(ctx, apps) }()
	go func() { defer wg.Done(); tookB, errB = b.Claim(ctx, rev) }()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("claims: a %v, b %v", errA, errB)
	}
	if len(tookA)+len(tookB) != len(apps) {
		t.Fatalf("a took %d, b %d: %d apps in all, want %d", len(tookA), len(tookB), len(tookA)+len(tookB), len(apps))
	}
	owner := map[string]string{}
	for _, took := range []struct {
		m    *member
		apps []string
	}{{a, tookA}, {b, tookB}} {
		for _, app := range took.apps {
			if prev, dup := owner[app]; dup {
				t.Fatalf("%s taken by %s and %s", app, prev, took.m.ID())
			}
			owner[app] = took.m.ID()
			f, ok := took.m.Held(app)
			holder, crev := ownerOf(t, cli, a.Shard, app)
			if !ok || holder != took.m.ID() || f.Token != crev {
				t.Fatalf("%s: %s holds it %v with %+v; etcd says %q at %d", app, took.m.ID(), ok, f, holder, crev)
			}
		}
	}
}

// A replica whose lease may have expired claims nothing.
func TestClaimNeedsALiveLease(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	a := join(t, cli, "a")
	a.mu.Lock()
	lease := a.lease
	a.mu.Unlock()
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a notices its lease is gone", func() error {
		return testenv.Check(a.Check() != nil, "a still checks fine")
	})
	took, err := a.Claim(ctx, appNames(10))
	if err == nil || len(took) != 0 {
		t.Fatalf("claim without a lease: took %v, err %v", took, err)
	}
	for _, app := range appNames(10) {
		if holder, _ := ownerOf(t, cli, a.Shard, app); holder != "" {
			t.Fatalf("%s held by %q", app, holder)
		}
	}
}
