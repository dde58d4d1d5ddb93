package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/deploysim"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// shardSteps: each weight step asks for a different number of canary
// instances (1, 2, 3 of 4), so the deploy system's log shows whether a
// rollout ever went back a step.
const shardSteps = "[{setWeight: 25}, {pause: {duration: 1s}}, {setWeight: 50}, {pause: {duration: 1s}}, {setWeight: 75}, {setWeight: 100}]"

// shardCluster is graylane replicas in ha.mode shard on one etcd, against
// one deploy system.
type shardCluster struct {
	t       *testing.T
	cli     *clientv3.Client
	sim     *deploysim.Sim
	hookURL string
	opts    func(id string) graylanetest.Options
	reps    map[string]*graylanetest.Graylane
}

func newShardCluster(t *testing.T, ttl string) *shardCluster {
	etcd := etcdtest.Start(t)
	sim, url := deploysim.Start(t, deploysim.Config{Fencing: true, Record: true})
	c := &shardCluster{t: t, cli: etcd.Client(), sim: sim, hookURL: url, reps: map[string]*graylanetest.Graylane{}}
	c.opts = func(id string) graylanetest.Options {
		return graylanetest.Options{
			Config: map[string]any{
				"etcd":   map[string]any{"endpoints": etcd.Endpoints()},
				"ha":     map[string]any{"mode": "shard", "ttl": ttl, "id": id},
				"log":    map[string]any{"level": "info"},
				"engine": map[string]any{"resync": "2s", "idleResync": "10s"},
			},
			Env: []string{"HOOK_SECRET=" + deploysim.Secret},
		}
	}
	return c
}

func (c *shardCluster) start(id string) *graylanetest.Graylane {
	g := graylanetest.Start(c.t, c.opts(id))
	c.reps[id] = g
	return g
}

// put writes every app's spec at version, 100 per transaction.
func (c *shardCluster) put(apps []string, version string) {
	c.t.Helper()
	ctx := context.Background()
	for i := 0; i < len(apps); i += 100 {
		var ops []clientv3.Op
		for _, a := range apps[i:min(i+100, len(apps))] {
			ops = append(ops, clientv3.OpPut("/graylane/apps/"+a, deploysim.Spec(c.hookURL, a, version, 4, shardSteps)))
		}
		if _, err := c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			c.t.Fatal(err)
		}
	}
}

// waitHealthy waits until every app is Healthy at version, as the
// replica g lists them.
func (c *shardCluster) waitHealthy(g *graylanetest.Graylane, apps []string, version string, within time.Duration) {
	c.t.Helper()
	testenv.Eventually(c.t, within, fmt.Sprintf("all %d apps Healthy at %s (listed by %s)", len(apps), version, g.APIURL), func() error {
		l, err := g.Client().Apps(context.Background(), client.ListOptions{Search: "app-", Limit: 1000})
		if err != nil {
			return err
		}
		ok := 0
		for _, s := range l {
			if s.Phase == "Healthy" && s.StableVersion == version && s.Ready == 4 {
				ok++
			}
		}
		return testenv.Check(ok == len(apps), "%d of %d", ok, len(apps))
	})
}

func health(t *testing.T, g *graylanetest.Graylane) (engine.ShardStatus, bool) {
	t.Helper()
	resp, err := http.Get(g.APIURL + "/api/v1/health")
	if err != nil {
		return engine.ShardStatus{}, false
	}
	defer resp.Body.Close()
	var h struct {
		Ready bool                `json:"ready"`
		Shard *engine.ShardStatus `json:"shard"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Shard == nil {
		return engine.ShardStatus{}, false
	}
	return *h.Shard, h.Ready
}

// singleDriver checks the deploy system's log: every request carries a
// replica and a fencing token; per app, once a request with a higher
// token arrived (a new owner), no request with a lower one ever arrives
// (the old owner never acts after the handover point); a token is only
// ever used by one replica; and the canary never goes back a step (the
// count of the version being rolled out never falls) while it rolls.
// It returns the requests per replica.
func singleDriver(t *testing.T, reqs []deploysim.Request, rolling string) map[string]int {
	t.Helper()
	type appState struct {
		top      int64
		holder   map[int64]string
		canaryAt int
	}
	per := map[string]*appState{}
	byReplica := map[string]int{}
	for _, r := range reqs {
		if r.Replica == "" || r.Token <= 0 {
			t.Fatalf("a request without a fence: %+v", r)
		}
		byReplica[r.Replica]++
		st := per[r.App]
		if st == nil {
			st = &appState{holder: map[int64]string{}}
			per[r.App] = st
		}
		if who, ok := st.holder[r.Token]; ok && who != r.Replica {
			t.Fatalf("%s: token %d used by %s and %s", r.App, r.Token, who, r.Replica)
		}
		st.holder[r.Token] = r.Replica
		if r.Token < st.top {
			t.Fatalf("%s: %s sent a %s with token %d at %s, after token %d (%s) took over: two drivers",
				r.App, r.Replica, r.Method, r.Token, r.At.Format("15:04:05.000"), st.top, st.holder[st.top])
		}
		st.top = r.Token
		if r.Method == http.MethodPost && rolling != "" {
			if n := r.Replicas[rolling]; n > 0 {
				if n < st.canaryAt {
					t.Fatalf("%s: %s asked for %d instances of %s after %d: the rollout went back a step", r.App, r.Replica, n, rolling, st.canaryAt)
				}
				st.canaryAt = n
			}
		}
	}
	return byReplica
}

// Three replicas share 1,000 webhook apps; a fourth takes about a
// quarter; a replica killed with SIGKILL in the middle of a rollout of
// every app has its share taken over by the others, which complete it.
// Throughout, the deploy system sees one driver per app at a time.
func TestShardThreeReplicasFourthJoinsOneKilled(t *testing.T) {
	testenv.IntegrationTest(t)
	c := newShardCluster(t, "3s")
	apps := make([]string, 1000)
	for i := range apps {
		apps[i] = fmt.Sprintf("app-%04d", i)
	}
	r1, r2, r3 := c.start("r1"), c.start("r2"), c.start("r3")
	c.put(apps, "v1")
	c.waitHealthy(r1, apps, "v1", 5*time.Minute)
	drivers := c.sim.Drivers()
	count := map[string]int{}
	for _, a := range apps {
		count[drivers[a]]++
	}
	for _, id := range []string{"r1", "r2", "r3"} {
		if count[id] < 250 || count[id] > 420 {
			t.Fatalf("apps per replica %v: want about a third each", count)
		}
	}
	t.Logf("FIGURE three replicas: apps per replica %v", count)
	// each holds whole documents for its share only, digests for the rest
	testenv.Eventually(t, time.Minute, "every replica holds whole documents only for its share", func() error {
		for _, g := range []*graylanetest.Graylane{r1, r2, r3} {
			st, _ := health(t, g)
			if st.Documents+st.Digests != len(apps) || st.Documents > st.Held+20 || st.Documents < st.Held {
				return fmt.Errorf("%s holds %d apps, %d documents whole and %d as digests", st.ID, st.Held, st.Documents, st.Digests)
			}
		}
		return nil
	})

	// a fourth replica takes about a quarter, without pausing the others
	r4 := c.start("r4")
	testenv.Eventually(t, 2*time.Minute, "the fourth replica holds about a quarter of the apps", func() error {
		st, _ := health(t, r4)
		return testenv.Check(st.Held >= 175 && st.Held <= 330, "it holds %d (members %v)", st.Held, st.Members)
	})
	testenv.Eventually(t, time.Minute, "the others gave those apps up", func() error {
		total := 0
		for _, g := range []*graylanetest.Graylane{r1, r2, r3, r4} {
			st, _ := health(t, g)
			total += st.Held
		}
		return testenv.Check(total == len(apps), "the four hold %d apps together", total)
	})
	held := map[string]int{}
	for id, g := range map[string]*graylanetest.Graylane{"r1": r1, "r2": r2, "r3": r3, "r4": r4} {
		st, _ := health(t, g)
		held[id] = st.Held
	}
	t.Logf("FIGURE four replicas: apps held %v", held)

	// a rollout of every app; r2 dies in the middle of it
	c.put(apps, "v2")
	testenv.Eventually(t, 2*time.Minute, "r2's apps are rolling out", func() error {
		l, err := r1.Client().Apps(context.Background(), client.ListOptions{Search: "app-", Phase: "Progressing", Limit: 1000})
		if err != nil {
			return err
		}
		mid := 0
		for _, s := range l {
			if s.Driver == "r2" && s.Step >= 2 {
				mid++
			}
		}
		return testenv.Check(mid >= 20, "%d of r2's apps past step 2", mid)
	})
	var r2apps []string
	for a, who := range c.sim.Drivers() {
		if who == "r2" {
			r2apps = append(r2apps, a)
		}
	}
	killed := time.Now()
	r2.Kill()
	c.waitHealthy(r1, apps, "v2", 5*time.Minute)
	taken := c.sim.Taken()
	drivers = c.sim.Drivers()
	var takeover []time.Duration
	for _, a := range r2apps {
		if drivers[a] == "r2" {
			t.Fatalf("%s is still driven by the killed r2", a)
		}
		takeover = append(takeover, taken[a].Sub(killed))
	}
	sort.Slice(takeover, func(i, j int) bool { return takeover[i] < takeover[j] })
	if len(takeover) > 0 {
		t.Logf("FIGURE kill -9 of r2 (%d apps, ha.ttl 3s): kill → new owner's first request p50 %v, max %v",
			len(r2apps), takeover[len(takeover)/2].Round(time.Millisecond), takeover[len(takeover)-1].Round(time.Millisecond))
	}
	for _, a := range apps {
		if got := c.sim.Running(a); fmt.Sprint(got) != "map[v2:4]" {
			t.Fatalf("%s runs %v, want v2:4", a, got)
		}
	}
	// the survivors read the documents of the apps they took over
	for _, g := range []*graylanetest.Graylane{r1, r3, r4} {
		st, _ := health(t, g)
		if st.Documents < st.Held || st.Documents+st.Digests != len(apps) {
			t.Errorf("%s after the takeover: holds %d apps, %d documents whole and %d as digests", st.ID, st.Held, st.Documents, st.Digests)
		}
	}
	byReplica := singleDriver(t, c.sim.Requests(), "v2")
	if cnt := c.sim.Counts(); cnt.Refused != 0 {
		t.Fatalf("the deploy system refused %d requests with a stale fencing token", cnt.Refused)
	}
	t.Logf("requests per replica: %v", byReplica)
}

// A replica paused (SIGSTOP) past its lease's TTL loses its apps to the
// other; resumed (SIGCONT), it writes nothing with its old lease — no
// state record, no request the deploy system accepts — and joins again.
func TestShardPausedReplicaIsFencedAndRejoins(t *testing.T) {
	testenv.IntegrationTest(t)
	c := newShardCluster(t, "2s")
	apps := make([]string, 200)
	for i := range apps {
		apps[i] = fmt.Sprintf("app-%04d", i)
	}
	a, b := c.start("ra"), c.start("rb")
	c.put(apps, "v1")
	c.waitHealthy(b, apps, "v1", 3*time.Minute)
	c.put(apps, "v2")
	testenv.Eventually(t, 2*time.Minute, "ra's apps are rolling out", func() error {
		l, err := b.Client().Apps(context.Background(), client.ListOptions{Search: "app-", Phase: "Progressing", Limit: 1000})
		if err != nil {
			return err
		}
		n := 0
		for _, s := range l {
			if s.Driver == "ra" {
				n++
			}
		}
		return testenv.Check(n >= 20, "%d of ra's apps progressing", n)
	})
	ctx := context.Background()
	a.Pause()
	paused := time.Now()
	testenv.Eventually(t, time.Minute, "rb holds and drives every app (ra's lease expired)", func() error {
		st, _ := health(t, b)
		if st.Held != len(apps) || len(st.Members) != 1 {
			return fmt.Errorf("rb holds %d, sees members %v", st.Held, st.Members)
		}
		drivers := c.sim.Drivers()
		for _, app := range apps {
			if drivers[app] != "rb" {
				return fmt.Errorf("%s last driven by %q", app, drivers[app])
			}
		}
		return nil
	})
	oldTokens := map[int64]bool{}
	for _, r := range c.sim.Requests() {
		if r.Replica == "ra" {
			oldTokens[r.Token] = true
		}
	}
	// what etcd holds from here on is compared with what ra writes
	resumedAt, err := c.cli.Get(ctx, "/graylane/state/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writes := c.cli.Watch(wctx, "/graylane/state/", clientv3.WithPrefix(), clientv3.WithRev(resumedAt.Header.Revision+1))
	resumed := time.Now()
	a.Resume()
	t.Logf("ra paused for %v", resumed.Sub(paused).Round(time.Millisecond))
	// ra joins again: a new member key (its old one went with its lease),
	// and it takes its share back
	var rejoined int64
	testenv.Eventually(t, time.Minute, "ra joins again and takes its share back", func() error {
		mk, err := c.cli.Get(ctx, "/graylane/shard/members/ra")
		if err != nil {
			return err
		}
		if len(mk.Kvs) == 0 || mk.Kvs[0].CreateRevision <= resumedAt.Header.Revision {
			return fmt.Errorf("ra has not registered again")
		}
		rejoined = mk.Kvs[0].CreateRevision
		st, ready := health(t, a)
		return testenv.Check(ready && st.Active && st.Held > 20, "ra: active %v, holds %d", st.Active, st.Held)
	})
	c.waitHealthy(b, apps, "v2", 3*time.Minute)
	// every state record written between the resume and the rejoin was
	// written by rb: ra's transactions with its old fences failed
	cancel()
	for resp := range writes {
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision >= rejoined {
				continue
			}
			var rec engine.Record
			if err := json.Unmarshal(ev.Kv.Value, &rec); err == nil && rec.Driver == "ra" {
				t.Fatalf("ra wrote %s at revision %d after it was resumed and before it joined again (at %d)", ev.Kv.Key, ev.Kv.ModRevision, rejoined)
			}
		}
	}
	// the deploy system accepted nothing from ra's old term after rb took
	// over: a request that passed ra's lease check before the pause and
	// went out after it was refused for its stale token, and there are
	// at most as many as passes were running (engine.workers)
	late := 0
	for _, r := range c.sim.Requests() {
		if r.Replica == "ra" && oldTokens[r.Token] && r.At.After(resumed) {
			late++
			if !r.Refused {
				t.Fatalf("the deploy system accepted a request of ra's old term after ra was resumed: %+v", r)
			}
		}
	}
	if late > engine.DefaultWorkers {
		t.Fatalf("%d requests of ra's old term after it was resumed: more than the passes in flight (%d)", late, engine.DefaultWorkers)
	}
	singleDriver(t, acceptedOnly(c.sim.Requests()), "v2")
	log := a.Log()
	if !strings.Contains(log, "lease lost") && !strings.Contains(log, "lease not renewed before its deadline") {
		t.Fatalf("ra never noticed it lost its lease:\n%s", a.LogTail(40))
	}
	t.Logf("requests of ra's old term after the resume (all refused): %d", late)
}

func acceptedOnly(reqs []deploysim.Request) []deploysim.Request {
	var out []deploysim.Request
	for _, r := range reqs {
		if !r.Refused {
			out = append(out, r)
		}
	}
	return out
}
