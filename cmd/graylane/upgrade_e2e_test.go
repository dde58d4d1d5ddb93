package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// deployLog plays a deploy system behind the webhook backend, like
// deploySystem, and keeps every desired state it was sent, in order.
type deployLog struct {
	deploySystem
	logMu  sync.Mutex
	states []deployed
}

type deployed struct {
	Step     int
	Replicas string
}

func (d *deployLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var body struct {
			Step     *int           `json:"step"`
			Replicas map[string]int `json:"replicas"`
		}
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err == nil {
			st := deployed{Step: -1, Replicas: fmt.Sprint(body.Replicas)}
			if body.Step != nil {
				st.Step = *body.Step
			}
			d.logMu.Lock()
			d.states = append(d.states, st)
			d.logMu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
	}
	d.deploySystem.ServeHTTP(w, r)
}

// distinct is the sequence of desired states with repeats of the same
// state in a row (a pass applying what is already applied) collapsed.
func (d *deployLog) distinct() []deployed {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	var out []deployed
	for _, s := range d.states {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// recordSchema is the schema member of an etcd key's JSON value (0: none).
func recordSchema(t *testing.T, cli *clientv3.Client, key string) int {
	t.Helper()
	resp, err := cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("get %s: %v", key, err)
	}
	var m struct {
		Schema int `json:"schema"`
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return m.Schema
}

// upgradeStatus runs `graylane upgrade-status` of bin against etcd.
func upgradeStatus(t *testing.T, bin string, endpoints []string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(bin, "graylane"), "upgrade-status", "--etcd.endpoints", strings.Join(endpoints, ",")).CombinedOutput()
	if err != nil {
		t.Fatalf("graylane upgrade-status: %v\n%s", err, out)
	}
	t.Logf("graylane upgrade-status:\n%s", out)
	return string(out)
}

var stepCompleted = regexp.MustCompile(`step (\d+)/(\d+) of v2 done`)

// TestEndToEndHAPairUpgradedOneReplicaAtATime: two graylanes of the
// previous release (built from graylanetest.PreviousRelease) run a canary
// in HA on one external etcd. Each replica in turn is stopped and replaced
// by this tree's graylane while the canary is in flight: the new standby
// queues a command the old leader processes (so it writes records in the
// old format), a timed pause is running when the old leader stops and the
// new one takes over, and only once no old graylane is left are the
// records migrated to schema 1. The canary finishes with every step taken
// exactly once: each StepCompleted event is logged once across the four
// processes, and the deploy system received each step's desired state
// once, in order.
func TestEndToEndHAPairUpgradedOneReplicaAtATime(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	oldBin := graylanetest.ReleaseBinaries(t, graylanetest.PreviousRelease)
	newBin := graylanetest.Binaries(t)
	etcd := etcdtest.Start(t)
	cli := etcd.Client()
	sys := &deployLog{}
	hook := httptest.NewServer(sys)
	t.Cleanup(hook.Close)

	opts := func(bin, id string) graylanetest.Options {
		return graylanetest.Options{Bin: bin, Env: []string{"HOOK_SECRET=e2e-webhook-secret"}, Config: map[string]any{
			"etcd": map[string]any{"endpoints": etcd.Endpoints()},
			"ha":   map[string]any{"enabled": true, "ttl": "2s", "id": id},
		}}
	}
	a := graylanetest.Start(t, opts(oldBin, "a"))
	b := graylanetest.Start(t, opts(oldBin, "b"))
	if ra, rb := readyz(t, a), readyz(t, b); ra != "ok (leader)" || rb != "ok (standby)" {
		t.Fatalf("readyz: a %q, b %q", ra, rb)
	}
	const steps = 9
	doc := func(version string) string {
		return fmt.Sprintf(`app: billing
version: %s
replicas: 4
strategy:
  steps: [{setWeight: 25}, {pause: {}}, {setWeight: 50}, {pause: {}}, {setWeight: 75}, {pause: {duration: 4s}}, {setWeight: 90}, {pause: {}}, {setWeight: 100}]
  scaleDownDelay: 0s
backend:
  type: webhook
  webhook: {url: "%s/deploy", statusURL: "%s/status", secretEnv: HOOK_SECRET}
traffic: {type: none}
`, version, hook.URL, hook.URL)
	}
	if _, err := cli.Put(ctx, "/graylane/apps/billing", doc("v1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "billing", 60*time.Second, "v1 healthy", healthyAt("v1"))
	if _, err := cli.Put(ctx, "/graylane/apps/billing", doc("v2")); err != nil {
		t.Fatal(err)
	}
	pausedAt := func(step int) func(engine.AppView) bool {
		return func(v engine.AppView) bool {
			return v.Status.Phase == rollout.Paused && v.Status.CanaryVersion == "v2" && v.Status.Step == step
		}
	}
	waitFor(t, a, "billing", 60*time.Second, "paused at step 2 under the previous release", pausedAt(1))
	if s := recordSchema(t, cli, "/graylane/state/billing"); s != 0 {
		t.Fatalf("the previous release wrote schema %d", s)
	}

	// 1. b is replaced by this release: a standby next to an old leader
	b.Upgrade(newBin)
	if rb := readyz(t, b); rb != "ok (standby)" {
		t.Fatalf("upgraded b: readyz %q", rb)
	}
	testenv.Eventually(t, 30*time.Second, "b names the old graylane it waits for", func() error {
		return testenv.Check(strings.Contains(b.Log(), "a (a graylane released before schema versions) reads 0"), "not logged yet")
	})
	// the new standby queues the command; the old leader processes it
	if _, err := b.Client().Command(ctx, "billing", rollout.CmdPromote); err != nil {
		t.Fatalf("promote through the new standby: %v", err)
	}
	waitFor(t, b, "billing", 60*time.Second, "paused at step 4 (the old leader ran the command)", pausedAt(3))
	if s := recordSchema(t, cli, "/graylane/state/billing"); s != 0 {
		t.Fatalf("records at schema %d while an old graylane runs", s)
	}
	rep, err := upgrade.Inspect(ctx, cli, "", []string{"/graylane/leader/"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Storage.Kinds["rollout-record"] != 0 || len(rep.Older) != 1 || rep.Older[0] != "a" || len(rep.Members) != 1 || rep.Members[0].ID != "b" {
		t.Fatalf("mid-upgrade: %+v", rep)
	}
	status := upgradeStatus(t, newBin, etcd.Endpoints())
	for _, want := range []string{"(released before schema versions)", "rollout-record: written at schema 0 until every graylane reads 1: a (a graylane released before schema versions) reads 0"} {
		if !strings.Contains(status, want) {
			t.Fatalf("upgrade-status mid-upgrade lacks %q:\n%s", want, status)
		}
	}

	// 2. the next step runs into a timed pause, and a (the old leader) is
	// replaced while it counts down: b takes over and finishes the pause
	if _, err := b.Client().Command(ctx, "billing", rollout.CmdPromote); err != nil {
		t.Fatalf("promote: %v", err)
	}
	waitFor(t, b, "billing", 60*time.Second, "in the timed pause", func(v engine.AppView) bool {
		return v.Status.CanaryVersion == "v2" && v.Status.Step == 5
	})
	a.Stop()
	testenv.Eventually(t, 30*time.Second, "b leads", func() error {
		r := readyz(t, b)
		return testenv.Check(r == "ok (leader)", "readyz %q", r)
	})
	a.Upgrade(newBin)
	if ra := readyz(t, a); ra != "ok (standby)" {
		t.Fatalf("upgraded a: readyz %q", ra)
	}
	testenv.Eventually(t, 60*time.Second, "records migrated once no old graylane runs", func() error {
		rep, err := upgrade.Inspect(ctx, cli, "", []string{"/graylane/leader/"})
		if err != nil {
			return err
		}
		return testenv.Check(rep.Storage.Kinds["rollout-record"] == 1 && rep.Storage.Migrated["rollout-record"] == 1 && len(rep.Older) == 0,
			"storage %+v older %v", rep.Storage, rep.Older)
	})
	if s := recordSchema(t, cli, "/graylane/state/billing"); s != 1 {
		t.Fatalf("record at schema %d after the migration", s)
	}
	if status := upgradeStatus(t, newBin, etcd.Endpoints()); !strings.Contains(status, "the upgrade is complete") {
		t.Fatalf("upgrade-status after the upgrade:\n%s", status)
	}
	waitFor(t, a, "billing", 60*time.Second, "paused at step 8 after the timed pause", pausedAt(7))

	// 3. both new: the canary finishes
	if _, err := a.Client().Command(ctx, "billing", rollout.CmdPromote); err != nil {
		t.Fatalf("promote through a: %v", err)
	}
	waitFor(t, a, "billing", 60*time.Second, "v2 healthy", healthyAt("v2"))

	// every step exactly once: the events, across every process's log
	seen := map[int]int{}
	for _, g := range []*graylanetest.Graylane{a, b} {
		for _, line := range strings.Split(g.Log(), "\n") {
			if !strings.Contains(line, "reason=StepCompleted") || !strings.Contains(line, "app=billing") {
				continue
			}
			if m := stepCompleted.FindStringSubmatch(line); m != nil {
				var n int
				fmt.Sscan(m[1], &n)
				seen[n]++
			}
		}
	}
	for n := 1; n <= steps; n++ {
		if seen[n] != 1 {
			t.Errorf("step %d/%d completed %d times (all: %v)", n, steps, seen[n], seen)
		}
	}
	// ... and what the deploy system was asked, in order: every step's
	// desired state once, never going back
	states := sys.distinct()
	var trace []string
	for _, s := range states {
		trace = append(trace, fmt.Sprintf("%d:%s", s.Step, s.Replicas))
	}
	t.Logf("deploy system: %s", strings.Join(trace, " → "))
	seenState := map[deployed]bool{}
	lastStep := -2
	stepsSeen := map[int]bool{}
	for _, s := range states {
		if seenState[s] {
			t.Fatalf("desired state %+v sent again after another one: %s", s, strings.Join(trace, " → "))
		}
		seenState[s] = true
		if s.Step >= 0 {
			if s.Step < lastStep {
				t.Fatalf("step %d after step %d: %s", s.Step, lastStep, strings.Join(trace, " → "))
			}
			lastStep = s.Step
			stepsSeen[s.Step] = true
		}
	}
	var missing []int
	for _, i := range []int{0, 2, 4, 6} { // the setWeight steps before the last
		if !stepsSeen[i] {
			missing = append(missing, i)
		}
	}
	sort.Ints(missing)
	if len(missing) > 0 || states[len(states)-1].Replicas != "map[v2:4]" {
		t.Fatalf("steps %v never applied, or not finished at v2 x4: %s", missing, strings.Join(trace, " → "))
	}
}

// fileSchema is the schema member of a JSON file (nil when absent).
func fileSchema(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m["schema"]
}

// TestEndToEndUpgradeOneGraylaneWithEmbeddedEtcd: the default install (one
// graylane, embedded etcd, process backend behind the proxy process) of the
// previous release, mid-canary, replaced by this release on the same data
// directory. It adopts every instance (none started again), migrates its
// records at once (it is the only member) and rewrites the process
// backend's files at version 1, and the canary finishes. Then, with etcd
// marked as holding rollout records of a newer schema than this release
// reads, this release refuses to start (exit code 2) and says why.
func TestEndToEndUpgradeOneGraylaneWithEmbeddedEtcd(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx := context.Background()
	oldBin := graylanetest.ReleaseBinaries(t, graylanetest.PreviousRelease)
	newBin := graylanetest.Binaries(t)
	g := graylanetest.Start(t, graylanetest.Options{Bin: oldBin})
	port := testenv.FreePort(t)
	strategy := "  type: canary\n  steps: [{setWeight: 25}, {pause: {}}, {setWeight: 100}]\n  scaleDownDelay: 0s"
	g.PutSpec("shop", releaseDoc("shop", "v1", port, strategy))
	waitFor(t, g, "shop", 90*time.Second, "v1 healthy", healthyAt("v1"))
	g.PutSpec("shop", releaseDoc("shop", "v2", port, strategy))
	waitFor(t, g, "shop", 90*time.Second, "paused at step 2", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.CanaryVersion == "v2" && v.Status.Step == 1
	})
	if s := recordSchema(t, g.Etcd(), "/graylane/state/shop"); s != 0 {
		t.Fatalf("previous release wrote schema %d", s)
	}
	instances, _ := filepath.Glob(filepath.Join(g.Dir, "data", "process", "apps", "shop", "instances", "*.json"))
	if len(instances) != 5 { // 4 of v1, 1 canary
		t.Fatalf("instance records %v", instances)
	}
	for _, f := range instances {
		if v := fileSchema(t, f); v != nil {
			t.Fatalf("%s: schema %v from the previous release", f, v)
		}
	}
	before := g.Starts("shop")

	g.Upgrade(newBin)
	testenv.Eventually(t, 60*time.Second, "records migrated", func() error {
		rep, err := upgrade.Inspect(ctx, g.Etcd(), "", []string{"/graylane/leader/"})
		if err != nil {
			return err
		}
		return testenv.Check(rep.Storage.Migrated["rollout-record"] == 1, "storage %+v", rep.Storage)
	})
	if s := recordSchema(t, g.Etcd(), "/graylane/state/shop"); s != 1 {
		t.Fatalf("state record at schema %d after the upgrade", s)
	}
	for _, f := range append(instances, filepath.Join(g.Dir, "data", "process", "apps", "shop", "app.json")) {
		if v := fileSchema(t, f); v != 1.0 {
			t.Fatalf("%s: schema %v after the upgrade", f, v)
		}
	}
	if after := g.Starts("shop"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("instances started again by the upgrade: %v, before %v", after, before)
	}
	if _, err := g.Client().Command(ctx, "shop", rollout.CmdPromote); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g, "shop", 90*time.Second, "v2 healthy", healthyAt("v2"))

	// a newer release raised the rollout records' schema: this one refuses
	if _, err := g.Etcd().Put(ctx, upgrade.DefaultPrefix+"storage",
		`{"schema":1,"kinds":{"rollout-record":2},"migrated":{"rollout-record":2},"raisedBy":"c (v9.9.9)"}`); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	if code := g.RestartExpectingExit(60 * time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2\n%s", code, g.LogTail(20))
	}
	log := g.LastLog()
	for _, want := range []string{"cannot run on this etcd", "rollout-record records at schema version 2 (raised by c (v9.9.9))", "reads up to 1"} {
		if !strings.Contains(log, want) {
			t.Fatalf("refusal does not say %q:\n%s", want, log)
		}
	}
}
