package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/testenv"
)

// world is everything a dry-run must leave untouched: every key of
// graylane's etcd with its mod revision, the config documents in Nacos and
// Apollo (stable and version-bound copies, Apollo's releases), the process
// backend's instances and how often each was started, and the traffic
// split.
type world struct {
	etcd      string
	nacos     string
	apollo    string
	instances string
	starts    string
	weights   string
}

func (e *configEnv) world(ids ...string) world {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.g.Etcd().Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		e.t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, fmt.Sprintf("%s@%d", kv.Key, kv.ModRevision))
	}
	var w world
	w.etcd = strings.Join(keys, "\n")
	var nacos, apollo []string
	nacos = append(nacos, e.nacosGet(stableData))
	apollo = append(apollo, e.apolloGet(""))
	for _, id := range ids {
		nacos = append(nacos, id+"="+e.nacosGet(configwire.NacosGrayDataID(stableData, id)))
		apollo = append(apollo, id+"="+e.apolloGet(id))
	}
	rels := e.apollo.Releases("demo", "default", "app.yaml")
	_, branch := e.apollo.Branch("demo", "default", "app.yaml")
	w.nacos = strings.Join(nacos, "|")
	w.apollo = fmt.Sprintf("%s|releases=%d|branch=%v", strings.Join(apollo, "|"), len(rels), branch)
	v, err := e.g.Client().App(ctx, "demo")
	if err != nil {
		e.t.Fatal(err)
	}
	var insts []string
	for _, in := range v.Status.Instances {
		insts = append(insts, in.ID+"/"+in.Version+"/"+in.Addr)
	}
	sort.Strings(insts)
	w.instances = strings.Join(insts, ",")
	starts, _ := json.Marshal(e.g.Starts("demo"))
	w.starts = string(starts)
	w.weights = fmt.Sprint(v.Status.Weights)
	return w
}

func diffWorld(a, b world) string {
	var out []string
	for _, f := range []struct{ name, a, b string }{{"etcd", a.etcd, b.etcd}, {"nacos", a.nacos, b.nacos}, {"apollo", a.apollo, b.apollo},
		{"instances", a.instances, b.instances}, {"starts", a.starts, b.starts}, {"weights", a.weights, b.weights}} {
		if f.a != f.b {
			out = append(out, fmt.Sprintf("%s changed:\n  before %s\n  after  %s", f.name, f.a, f.b))
		}
	}
	return strings.Join(out, "\n")
}

// TestEndToEndDryRunWritesNothing: a dry-run of a valid change, an
// invalid one and a config change answers the validation, the document
// diff, the plan and each config target's diff, and leaves every etcd
// key, both other centres, the backend and the router as they were.
func TestEndToEndDryRunWritesNothing(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newConfigEnv(t)
	e.put(e.spec("v1", "one", "report"))
	waitFor(t, e.g, "demo", 90*time.Second, "v1 healthy on its config", func(v engine.AppView) bool {
		return healthyAt("v1")(v) && allReport(map[string]string{"v1": digest("one")}, map[string]int{"v1": 2})(v)
	})
	cfgOnly := "v1" + "_cfg" + digest("changed")[:configwire.ShortLen]
	// the control: idle, graylane itself writes nothing
	before := e.world("v2", cfgOnly)
	time.Sleep(2 * time.Second)
	if d := diffWorld(before, e.world("v2", cfgOnly)); d != "" {
		t.Fatalf("graylane is not quiet while idle, the comparison below would mean nothing:\n%s", d)
	}
	files := t.TempDir()
	write := func(name, doc string) string {
		p := files + "/" + name
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// a valid change of code and config: graylane diff -f
	out, code := cli(t, e.g, "diff", "-f", write("v2.yaml", e.spec("v2", "two", "report")))
	for _, want := range []string{"nothing was written", "-version: v1", "+version: v2", "plan: v1 → v2 (canary)",
		"v1 100%", "v1 50% · v2 50%", "promote (paused", "v2 100%",
		"config: identity v2 (new binding)", "create etcd key=/config/demo/app.yaml@v2 (gray, at canary)", "+greeting: two",
		"update etcd key=/config/demo/app.yaml (stable, at promotion)", "-greeting: one", "update nacos", "apollo"} {
		if !strings.Contains(out, want) {
			t.Errorf("graylane diff lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("graylane diff of a valid change: exit %d", code)
	}
	// set-version --dry-run: the same document diff, no config change
	out, code = cli(t, e.g, "set-version", "demo", "v2", "--dry-run")
	if code != 0 || !strings.Contains(out, "+version: v2") || !strings.Contains(out, "config: identity v2 (new binding)") {
		t.Errorf("set-version --dry-run: exit %d\n%s", code, out)
	}
	// an invalid change: every error with its field path, exit 2
	bad := strings.Replace(strings.Replace(e.spec("v2", "two", "report"), "replicas: 2", "replicas: 0", 1), "setWeight: 50", "setWeight: 150", 1)
	out, code = cli(t, e.g, "apply", "-f", write("bad.yaml", bad), "--dry-run")
	if code != 2 || !strings.Contains(out, "INVALID") || !strings.Contains(out, "replicas: 0 is outside") || !strings.Contains(out, "strategy.steps[0].setWeight") {
		t.Errorf("apply --dry-run of an invalid spec: exit %d\n%s", code, out)
	}
	// a config-only change: its own release identity, each target's diff
	res, err := e.g.Client().DryRunSpec(context.Background(), "demo", []byte(e.spec("v1", "changed", "report")))
	if err != nil || !res.Valid || res.Config == nil {
		t.Fatalf("dry-run of a config change: %+v %v", res, err)
	}
	if res.Config.Identity != cfgOnly || res.Config.Binding != "config-only change" || len(res.Config.Writes) != 6 {
		t.Errorf("config preview: %+v", res.Config)
	}
	for _, w := range res.Config.Writes {
		if w.When == "promotion" && (w.Action != "update" || !strings.Contains(w.Diff, "-greeting: one") || !strings.Contains(w.Diff, "+greeting: changed")) {
			t.Errorf("stable write at promotion on %s: %s\n%s", w.Placement.String(), w.Action, w.Diff)
		}
		if w.Error != "" {
			t.Errorf("%s: %s", w.Placement.String(), w.Error)
		}
	}
	if !strings.Contains(res.Diff, "-        greeting: one") || !strings.Contains(res.Diff, "+        greeting: changed") || len(res.Plan.Steps) < 4 {
		t.Errorf("document diff / plan: %s\n%+v", res.Diff, res.Plan)
	}

	after := e.world("v2", cfgOnly)
	if d := diffWorld(before, after); d != "" {
		t.Fatalf("a dry-run wrote something:\n%s", d)
	}
}
