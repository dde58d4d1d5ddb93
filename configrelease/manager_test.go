package configrelease_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	etcdsrc "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// fixture is graylane's etcd (store) and an etcd config centre reached
// through a proxy that a test can cut, as if the centre were down.
type fixture struct {
	t      *testing.T
	store  *configrelease.EtcdStore
	cli    *clientv3.Client // direct: the store and the test's own reads
	proxy  *sourcetest.Proxy
	centre *etcdsrc.Documents // through the proxy
	now    time.Time
	mu     sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := etcdtest.Start(t)
	cli := srv.Client()
	proxy := sourcetest.NewProxy(t, srv.Addr())
	pcli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Addr()}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pcli.Close() })
	return &fixture{t: t, store: configrelease.NewEtcdStore(cli, ""), cli: cli, proxy: proxy, centre: etcdsrc.NewDocuments(pcli),
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fixture) manager() *configrelease.Manager {
	m, err := configrelease.New(configrelease.Config{Store: f.store, Centres: []configsync.Documents{f.centre}, Clock: clock.Func(f.clock),
		ReadBackTimeout: 2 * time.Second, OpTimeout: 3 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// get reads a key with the test's own etcd client.
func (f *fixture) get(key string) (string, bool) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := f.cli.Get(ctx, key)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

func (f *fixture) put(key, value string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.cli.Put(ctx, key, value); err != nil {
		f.t.Fatal(err)
	}
}

func release(t *testing.T, version, greeting string, extra string) *spec.Release {
	t.Helper()
	doc := fmt.Sprintf(`
app: demo
version: %s
backend: {type: process, process: {command: [demoapp]}}
config:
  files:
    - name: app.yaml
      content: "greeting: %s\n"
      schema: {type: object, required: [greeting]}
  targets:
    - etcd: {key: "/config/{{.App}}/{{.File}}"}
%s`, version, greeting, extra)
	rel, err := spec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// instance is a real HTTP server answering the config report, as an
// instance using sdk/config would.
type instance struct {
	srv      *httptest.Server
	mu       sync.Mutex
	checksum string
}

func newInstance(t *testing.T) *instance {
	in := &instance{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != spec.DefaultConfigReportPath {
			http.NotFound(w, r)
			return
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		_ = json.NewEncoder(w).Encode(configwire.Report{Checksum: in.checksum})
	}))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *instance) load(checksum string) {
	in.mu.Lock()
	in.checksum = checksum
	in.mu.Unlock()
}

func (in *instance) as(id, version string) adapters.Instance {
	return adapters.Instance{ID: id, Version: version, Addr: strings.TrimPrefix(in.srv.URL, "http://"), Ready: true}
}

func digestOf(t *testing.T, rel *spec.Release) string {
	t.Helper()
	b, err := configrelease.Resolve(context.Background(), rel.App, rel.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.Digest
}

func reasons(evs []rollout.Event) string {
	var r []string
	for _, e := range evs {
		r = append(r, e.Reason)
	}
	return strings.Join(r, ",")
}

func TestPrepareBindsIdentities(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t)
	m := f.manager()
	v1 := release(t, "v1", "one", "")
	if id, err := m.Prepare(ctx(t), v1); err != nil || id != "v1" {
		t.Fatalf("first config of v1: %q %v", id, err)
	}
	if id, err := m.Prepare(ctx(t), v1); err != nil || id != "v1" {
		t.Fatalf("same config again: %q %v", id, err)
	}
	changed := release(t, "v1", "changed", "")
	id, err := m.Prepare(ctx(t), changed)
	want := "v1" + configrelease.IdentitySeparator + configwire.Short(digestOf(t, changed))
	if err != nil || id != want || configrelease.CodeVersion(id) != "v1" {
		t.Fatalf("config-only change: %q %v, want %q", id, err, want)
	}
	e, ok, err := m.Entry(ctx(t), "demo", id)
	if err != nil || !ok || e.Version != "v1" || e.Bundle.Files[0].Content != "greeting: changed\n" {
		t.Fatalf("history entry of %s: %+v %v %v", id, e, ok, err)
	}
	hist, err := m.History(ctx(t), "demo")
	if err != nil || len(hist) != 2 {
		t.Fatalf("history: %d entries, %v", len(hist), err)
	}

	// a file by reference: missing key, unparsable, schema mismatch
	ref := func(version string) *spec.Release {
		rel, err := spec.Parse([]byte(`
app: demo
version: ` + version + `
backend: {type: process, process: {command: [demoapp]}}
config:
  files: [{name: app.yaml, contentRef: /src/demo/app.yaml, schema: {required: [greeting]}}]
  targets: [{etcd: {key: "/config/{{.App}}/{{.File}}"}}]
`))
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	for _, c := range []struct{ content, msg string }{
		{"", "does not exist"},
		{"greeting: [", "is not valid YAML"},
		{"other: 1", "does not match the schema"},
	} {
		if c.content != "" {
			f.put("/src/demo/app.yaml", c.content)
		}
		_, err := m.Prepare(ctx(t), ref("v9"))
		var verr *spec.ValidationError
		if !errors.As(err, &verr) || verr.Field() != "config.files[0].contentRef" || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("content %q: %v, want config.files[0].contentRef: ...%s", c.content, err, c.msg)
		}
	}
	if _, ok, _ := m.Entry(ctx(t), "demo", "v9"); ok {
		t.Fatal("an invalid config was recorded")
	}
	f.put("/src/demo/app.yaml", "greeting: by reference\n")
	if id, err := m.Prepare(ctx(t), ref("v9")); err != nil || id != "v9" {
		t.Fatalf("valid referenced file: %q %v", id, err)
	}
}

func TestCanaryPromoteRollback(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t)
	m := f.manager()
	v1, v2 := release(t, "v1", "one", ""), release(t, "v2", "two", "")
	d1, d2 := digestOf(t, v1), digestOf(t, v2)
	a, b := newInstance(t), newInstance(t)
	a.load(d1)
	pass := func(rel *spec.Release, st rollout.Status, insts ...adapters.Instance) configrelease.Result {
		t.Helper()
		f.advance(time.Second)
		id, err := m.Prepare(ctx(t), rel)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: rel, Identity: id, Status: st, Instances: insts})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	expect := func(key, want string) {
		t.Helper()
		got, ok := f.get(key)
		if want == "" && ok {
			t.Fatalf("%s = %q, want absent", key, got)
		}
		if want != "" && got != want {
			t.Fatalf("%s = %q (exists %v), want %q", key, got, ok, want)
		}
	}

	// first release: the stable config is written before anything runs
	res := pass(v1, rollout.Status{})
	expect("/config/demo/app.yaml", "greeting: one\n")
	if g := res.Gate; g.StableDigest != d1 || !g.Placed["v1"] || !strings.Contains(reasons(res.Events), "ConfigPromoted") {
		t.Fatalf("first release gate %v events %s", g, reasons(res.Events))
	}

	// canary of v2: a version-bound copy for v2 only
	res = pass(v2, rollout.Status{StableVersion: "v1", CanaryVersion: "v2"}, a.as("demo-v1-0", "v1"), b.as("demo-v2-0", "v2"))
	expect("/config/demo/app.yaml", "greeting: one\n")
	expect("/config/demo/app.yaml@v2", "greeting: two\n")
	g := res.Gate
	if !g.Placed["v2"] || g.StableDigest != d1 || g.Digests["v2"] != d2 || g.Loaded["v1"] != 1 || g.Loaded["v2"] != 0 {
		t.Fatalf("canary gate: %v", g)
	}
	if res.Instances[0].Meta[configrelease.MetaChecksum] != d1 {
		t.Fatalf("instance meta %v", res.Instances[0].Meta)
	}
	b.load(d2)
	res = pass(v2, rollout.Status{StableVersion: "v1", CanaryVersion: "v2"}, a.as("demo-v1-0", "v1"), b.as("demo-v2-0", "v2"))
	if res.Gate.Loaded["v2"] != 1 {
		t.Fatalf("v2 instance reports %s: gate %v", d2, res.Gate)
	}

	// promotion: v2's config becomes stable, then the copy goes
	res = pass(v2, rollout.Status{StableVersion: "v2", PreviousVersion: "v1"})
	expect("/config/demo/app.yaml", "greeting: two\n")
	expect("/config/demo/app.yaml@v2", "")
	if res.Gate.StableDigest != d2 || !strings.Contains(reasons(res.Events), "ConfigPromoted") {
		t.Fatalf("promotion: gate %v events %s", res.Gate, reasons(res.Events))
	}

	// rollback: v2 keeps its config on a pinned copy while v1's comes back
	res = pass(v2, rollout.Status{StableVersion: "v2", CanaryVersion: "v1", PreviousVersion: "v1", Rollback: true})
	expect("/config/demo/app.yaml", "greeting: one\n")
	expect("/config/demo/app.yaml@v2", "greeting: two\n")
	if g := res.Gate; !g.Placed["v1"] || !g.Placed["v2"] || g.StableDigest != d1 {
		t.Fatalf("rollback gate %v", g)
	}
	res = pass(v2, rollout.Status{StableVersion: "v1", PreviousVersion: "v2", RejectedVersion: "v2"})
	expect("/config/demo/app.yaml", "greeting: one\n")
	expect("/config/demo/app.yaml@v2", "")

	hist, err := m.History(ctx(t), "demo")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range hist {
		var k []string
		for _, ev := range e.Events {
			k = append(k, ev.Kind)
		}
		kinds = append(kinds, e.Identity+":"+strings.Join(k, "+"))
	}
	if got := strings.Join(kinds, " "); got != "v2:gray+stable+pinned+replaced v1:stable+replaced+stable" {
		t.Fatalf("history events: %s", got)
	}
	if v := m.View("demo"); v == nil || v.Layout.StableIdentity != "v1" || len(v.Placements) != 1 || !v.Placements[0].Verified {
		t.Fatalf("view %+v", v)
	}
}

func TestCentreDownThenBack(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t)
	m := f.manager()
	v1, v2 := release(t, "v1", "one", ""), release(t, "v2", "two", "")
	reconcile := func(m *configrelease.Manager, rel *spec.Release, st rollout.Status) configrelease.Result {
		t.Helper()
		id, err := m.Prepare(ctx(t), rel)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: rel, Identity: id, Status: st})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	reconcile(m, v1, rollout.Status{})
	restore := f.proxy.Cut()
	canary := rollout.Status{StableVersion: "v1", CanaryVersion: "v2"}
	res := reconcile(m, v2, canary)
	if res.Gate.Placed["v2"] || !strings.Contains(res.Gate.Waiting, "etcd key=/config/demo/app.yaml@v2") || !strings.Contains(reasons(res.Events), "ConfigWriteFailed") {
		t.Fatalf("centre down: gate %v events %v", res.Gate, res.Events)
	}
	st, err := f.store.LoadState(ctx(t), "demo")
	if err != nil || st.Txn == nil || st.Txn.To.GrayIdentity != "v2" || st.Txn.Ops[0].Done {
		t.Fatalf("no write-ahead record while the centre is down: %+v %v", st.Txn, err)
	}
	// while it backs off, nothing is tried
	res = reconcile(m, v2, canary)
	if res.Gate.Placed["v2"] || res.RequeueAfter <= 0 {
		t.Fatalf("backing off: %v requeue %s", res.Gate, res.RequeueAfter)
	}
	restore()
	f.advance(time.Minute)
	res = reconcile(m, v2, canary)
	if !res.Gate.Placed["v2"] {
		t.Fatalf("centre back: gate %v (waiting %s)", res.Gate, res.Gate.Waiting)
	}
	if got, _ := f.get("/config/demo/app.yaml@v2"); got != "greeting: two\n" {
		t.Fatalf("gray copy %q", got)
	}
	if st, _ := f.store.LoadState(ctx(t), "demo"); st.Txn != nil {
		t.Fatalf("write-ahead record left behind: %+v", st.Txn)
	}
}

func TestInterruptedWriteIsFinishedOrUndone(t *testing.T) {
	testenv.IntegrationTest(t)
	for _, undo := range []bool{false, true} {
		t.Run(map[bool]string{false: "finish", true: "undo"}[undo], func(t *testing.T) {
			f := newFixture(t)
			v1, v2 := release(t, "v1", "one", ""), release(t, "v2", "two", "")
			first := f.manager()
			for _, p := range []struct {
				rel *spec.Release
				st  rollout.Status
			}{{v1, rollout.Status{}}, {v2, rollout.Status{StableVersion: "v1", CanaryVersion: "v2"}}} {
				id, _ := first.Prepare(ctx(t), p.rel)
				if _, err := first.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: p.rel, Identity: id, Status: p.st}); err != nil {
					t.Fatal(err)
				}
			}
			// promotion starts: the stable key is written, then graylane
			// dies before the gray copy is removed (simulated by cutting
			// the centre after the first write lands)
			restore := f.proxy.Cut()
			promoted := rollout.Status{StableVersion: "v2", PreviousVersion: "v1"}
			if _, err := first.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: v2, Identity: "v2", Status: promoted}); err != nil {
				t.Fatal(err)
			}
			f.put("/config/demo/app.yaml", "greeting: two\n") // the write that landed before the crash
			restore()

			// a new graylane process (fresh memory) takes over
			second := f.manager()
			f.advance(time.Minute)
			rel, st, stable := v2, promoted, "greeting: two\n"
			if undo {
				// meanwhile the release was rolled back before promotion
				// completed: the write is undone
				rel, st, stable = v1, rollout.Status{StableVersion: "v1", RejectedVersion: "v2"}, "greeting: one\n"
			}
			id, _ := second.Prepare(ctx(t), rel)
			res, err := second.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: rel, Identity: id, Status: st})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(reasons(res.Events), "ConfigRecovery") {
				t.Fatalf("no recovery event: %v", res.Events)
			}
			if got, _ := f.get("/config/demo/app.yaml"); got != stable {
				t.Fatalf("stable %q, want %q", got, stable)
			}
			if got, ok := f.get("/config/demo/app.yaml@v2"); ok {
				t.Fatalf("gray copy left: %q", got)
			}
			if state, _ := f.store.LoadState(ctx(t), "demo"); state.Txn != nil {
				t.Fatalf("write-ahead record left: %+v", state.Txn)
			}
		})
	}
}

func TestDrift(t *testing.T) {
	testenv.IntegrationTest(t)
	for _, policy := range []string{"report", "repair"} {
		t.Run(policy, func(t *testing.T) {
			f := newFixture(t)
			m := f.manager()
			rel := release(t, "v1", "one", "  onDrift: "+policy+"\n")
			id, _ := m.Prepare(ctx(t), rel)
			pass := func() configrelease.Result {
				t.Helper()
				res, err := m.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: rel, Identity: id, Status: rollout.Status{StableVersion: "v1"}})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			pass()
			f.put("/config/demo/app.yaml", "greeting: edited in a console\n")
			f.advance(configrelease.DefaultDriftInterval)
			res := pass()
			var drift *rollout.Event
			for i := range res.Events {
				if res.Events[i].Reason == "ConfigDrift" {
					drift = &res.Events[i]
				}
			}
			if drift == nil || !strings.Contains(drift.Message, "-greeting: one") || !strings.Contains(drift.Message, "+greeting: edited in a console") {
				t.Fatalf("drift event: %+v (all %v)", drift, res.Events)
			}
			v := m.View("demo")
			got, _ := f.get("/config/demo/app.yaml")
			switch policy {
			case "report":
				if len(v.Drift) != 1 || got != "greeting: edited in a console\n" || res.Gate.StableDigest == "" {
					t.Fatalf("report: drift %+v, centre %q, gate %v", v.Drift, got, res.Gate)
				}
			case "repair":
				if got != "greeting: one\n" || len(v.Drift) != 0 {
					t.Fatalf("repair: centre %q, drift %+v", got, v.Drift)
				}
			}
		})
	}
}

// A file that reads as missing is drift only once it stays missing (some
// servers answer "not found" for a dataId being updated).
func TestDriftOfADeletedFileIsConfirmed(t *testing.T) {
	testenv.IntegrationTest(t)
	f := newFixture(t)
	m := f.manager()
	rel := release(t, "v1", "one", "")
	id, _ := m.Prepare(ctx(t), rel)
	pass := func() configrelease.Result {
		t.Helper()
		res, err := m.Reconcile(ctx(t), configrelease.Pass{App: "demo", Spec: rel, Identity: id, Status: rollout.Status{StableVersion: "v1"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	pass()
	if _, err := f.cli.Delete(ctx(t), "/config/demo/app.yaml"); err != nil {
		t.Fatal(err)
	}
	f.advance(configrelease.DefaultDriftInterval)
	if res := pass(); strings.Contains(reasons(res.Events), "ConfigDrift") {
		t.Fatalf("a first missing read reported as drift: %v", res.Events)
	}
	f.advance(configrelease.DefaultDriftInterval)
	if res := pass(); strings.Contains(reasons(res.Events), "ConfigDrift") {
		t.Fatalf("reported before the confirmation time: %v", res.Events)
	}
	f.advance(configrelease.DefaultDriftInterval)
	res := pass()
	if !strings.Contains(reasons(res.Events), "ConfigDrift") || len(m.View("demo").Drift) != 1 || m.View("demo").Drift[0].Got != "" {
		t.Fatalf("a deleted file not reported: %v %+v", res.Events, m.View("demo").Drift)
	}
}
