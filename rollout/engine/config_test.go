package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	etcdsrc "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

const configSpec = `
app: demo
version: %s
replicas: 2
strategy:
  type: canary
  steps: [{setWeight: 50}, {pause: {duration: 10s}}]
  scaleDownDelay: 5s
backend: {type: process, process: {command: [demoapp]}}
config:
  verifyInstances: false
  files:
    - name: app.yaml
      %s
      schema: {required: [greeting]}
  targets:
    - etcd: {key: "/config/{{.App}}/{{.File}}"}
`

// TestEngineConfigInStep drives the engine with a real config layer (on
// embedded etcd): the first release writes the stable config before any
// instance starts, a config-only change is a canary of its own release
// identity, and an invalid referenced file is rejected like any invalid
// spec.
func TestEngineConfigInStep(t *testing.T) {
	testenv.IntegrationTest(t)
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := etcdtest.Start(t)
	cli := srv.Client()
	h := newHarness(t)
	m, err := configrelease.New(configrelease.Config{Store: configrelease.NewEtcdStore(cli, ""), Centres: []configsync.Documents{etcdsrc.NewDocuments(cli)}, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	h.eng.cfg.Config = m
	get := func(key string) string {
		t.Helper()
		resp, err := cli.Get(c, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	inline := func(greeting string) string { return `content: "greeting: ` + greeting + `\n"` }

	h.put("demo", fmt.Sprintf(configSpec, "v1", inline("one")))
	v := h.converge("demo")
	if v.Status.Phase != rollout.Healthy || get("/config/demo/app.yaml") != "greeting: one\n" {
		t.Fatalf("first release: %+v, centre %q", v.Status.Status, get("/config/demo/app.yaml"))
	}
	if v.Status.Config == nil || v.Status.Config.Layout.StableIdentity != "v1" || v.Status.Config.Gate.StableDigest == "" {
		t.Fatalf("config view %+v", v.Status.Config)
	}
	h.rec.takeCalls()

	// config-only change: same code, new config, released as a canary
	h.put("demo", fmt.Sprintf(configSpec, "v1", inline("two")))
	v = h.converge("demo")
	id := v.Status.CanaryVersion
	if !strings.HasPrefix(id, "v1"+configrelease.IdentitySeparator) || v.Status.Step != 1 || v.Status.Weights[id] != 50 {
		t.Fatalf("config-only canary: %+v", v.Status.Status)
	}
	if got := get("/config/demo/app.yaml@" + id); got != "greeting: two\n" || get("/config/demo/app.yaml") != "greeting: one\n" {
		t.Fatalf("gray copy %q, stable %q", got, get("/config/demo/app.yaml"))
	}
	if calls := strings.Join(h.rec.takeCalls(), "; "); calls != "apply v1:2,"+id+":1; route "+id+":50,v1:50" {
		t.Fatalf("canary calls %q", calls)
	}
	h.clock.Add(10 * time.Second)
	v = h.converge("demo")
	if v.Status.Phase != rollout.Healthy || v.Status.StableVersion != id || get("/config/demo/app.yaml") != "greeting: two\n" || get("/config/demo/app.yaml@"+id) != "" {
		t.Fatalf("after promotion: %+v, stable %q", v.Status.Status, get("/config/demo/app.yaml"))
	}
	// rollback brings the code identity v1 and its config back together
	rec, rev, _ := h.store.Load(c, "demo")
	rec.Commands = append(rec.Commands, PendingCommand{ID: "rb", Command: rollout.CmdRollback})
	if _, err := h.store.Save(c, "demo", rec, rev); err != nil {
		t.Fatal(err)
	}
	v = h.converge("demo")
	if v.Status.StableVersion != "v1" || v.Status.Phase != rollout.RolledBack || get("/config/demo/app.yaml") != "greeting: one\n" {
		t.Fatalf("after rollback: %+v, stable %q", v.Status.Status, get("/config/demo/app.yaml"))
	}
	h.rec.takeCalls()

	// an unparsable file by reference: rejected, nothing written or started
	if _, err := cli.Put(c, "/src/demo/app.yaml", "greeting: [unclosed"); err != nil {
		t.Fatal(err)
	}
	h.put("demo", fmt.Sprintf(configSpec, "v2", "contentRef: /src/demo/app.yaml"))
	v = h.converge("demo")
	if v.Status.SpecError == nil || v.Status.SpecError.Field != "config.files[0].contentRef" || v.Spec.Version != "v1" {
		t.Fatalf("invalid referenced file: spec error %+v, spec %s", v.Status.SpecError, v.Spec.Version)
	}
	if calls := h.rec.takeCalls(); len(calls) != 0 || get("/config/demo/app.yaml@v2") != "" {
		t.Fatalf("an invalid config was acted on: calls %v", calls)
	}
}
