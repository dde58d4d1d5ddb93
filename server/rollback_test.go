package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

const schemaSpec = `
app: demo
version: VERSION
replicas: 1
backend: {type: process, process: {command: [demoapp]}}
config:
  verifyInstances: false
  files:
    - name: app.yaml
      content: "greeting: GREETING\n"
      schema: {required: [greeting], properties: {greeting: {type: string, minLength: MIN}}}
  targets: [{etcd: {key: "/config/{{.App}}/{{.File}}"}}]
`

func schemaDoc(version, greeting, min string) string {
	return strings.NewReplacer("VERSION", version, "GREETING", greeting, "MIN", min).Replace(schemaSpec)
}

// TestRollbackToRevisionRefusedWhenItsConfigNoLongerValidates: after the
// schema of a config file tightened, a rollback to a revision whose
// config breaks it is refused with the reason, and nothing is written:
// not the centre, not an intent, not a revision.
func TestRollbackToRevisionRefusedWhenItsConfigNoLongerValidates(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newFullEnv(t)
	ctx := context.Background()
	if code, b, _ := e.raw("", "PUT", "/api/v1/apps/demo", "application/yaml", schemaDoc("v1", "hi", "1")); code != 200 {
		t.Fatalf("v1: %d %s", code, b)
	}
	e.waitPhase("demo", "Healthy")
	if code, b, _ := e.raw("", "PUT", "/api/v1/apps/demo", "application/yaml", schemaDoc("v2", "hello world", "5")); code != 200 {
		t.Fatalf("v2: %d %s", code, b)
	}
	testenv.Eventually(t, 20*time.Second, "v2 healthy", func() error {
		v, err := e.eng.App(ctx, "demo")
		if err != nil {
			return err
		}
		return testenv.Check(v.Status.Phase == "Healthy" && v.Status.StableVersion == "v2", "status %+v", v.Status.Status)
	})
	e.waitRevisions(2)
	before, err := e.cli.Get(ctx, "/graylane/apps/demo")
	if err != nil {
		t.Fatal(err)
	}
	code, b, _ := e.raw("", "POST", "/api/v1/apps/demo/rollback", "application/json", `{"revision": 1}`)
	if code != 400 || !strings.Contains(string(b), "revision 1 (v1) cannot be restored") || !strings.Contains(string(b), "config.files[0]") {
		t.Fatalf("rollback to a revision whose config breaks today's schema: %d %s", code, b)
	}
	after, _ := e.cli.Get(ctx, "/graylane/apps/demo")
	if after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Fatal("the refused rollback wrote the centre")
	}
	intents, _ := e.cli.Get(ctx, "/graylane/records/intents/", clientPrefix())
	for _, kv := range intents.Kvs {
		if strings.Contains(string(kv.Value), `"rollback"`) {
			t.Fatalf("the refused rollback left an intent: %s", kv.Value)
		}
	}
	// the same rollback with a schema v1 meets is accepted
	if code, b, _ := e.raw("", "PUT", "/api/v1/apps/demo", "application/yaml", schemaDoc("v2", "hello world", "2")); code != 200 {
		t.Fatalf("v2 with a looser schema: %d %s", code, b)
	}
	if code, b, _ := e.raw("", "POST", "/api/v1/apps/demo/rollback", "application/json", `{"revision": 1}`); code != 200 || !strings.Contains(string(b), `"mode":"fast"`) {
		t.Fatalf("rollback to revision 1: %d %s", code, b)
	}
	e.waitRevisions(3)
	revs, err := e.recs.Revisions(ctx, "demo")
	if err != nil || revs[0].Version != "v1" || revs[0].RollbackTo != 1 || revs[0].Config == nil || revs[0].Config.Identity != "v1" {
		t.Fatalf("revisions: %v %+v", err, revs)
	}
	// unknown revision: 404 naming the field
	if code, body := e.do("POST", "/api/v1/apps/demo/rollback", `{"revision": 42}`); code != 404 || body["field"] != "revision" {
		t.Fatalf("unknown revision: %d %v", code, body)
	}
	if code, body := e.do("POST", "/api/v1/apps/demo/rollback", `{"revision": 1, "version": "v1"}`); code != 400 || body["field"] != "revision" {
		t.Fatalf("both revision and version: %d %v", code, body)
	}
}
