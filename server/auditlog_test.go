package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestEveryMutatingRouteIsAudited enumerates every route of the gin
// router and sends each mutating one a request: every route not exempt by
// name (auditExempt) must leave a record naming it, whatever its answer.
// A mutating route added later without being audited fails here.
func TestEveryMutatingRouteIsAudited(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newFullEnv(t)
	if code, body := e.do("PUT", "/api/v1/apps/demo", goodSpec); code != 200 {
		t.Fatalf("seed spec: %d %v", code, body)
	}
	e.waitPhase("demo", "Healthy")
	fill := strings.NewReplacer(":app", "demo", ":id", "10.0.0.1-8080", ":n", "1", ":identity", "v1", ":name", "app.yaml")
	mutating := 0
	for _, r := range e.srv.Router().Routes() {
		if !isMutating(r.Method) {
			continue
		}
		mutating++
		key := r.Method + " " + r.Path
		before := len(e.auditRecords())
		path := fill.Replace(r.Path)
		body := `{}`
		switch key {
		case "PUT /api/v1/apps/:app":
			body = goodSpec
		case "DELETE /api/v1/apps/:app":
			path = "/api/v1/apps/other" // keep demo for the routes after it
		}
		code, _, _ := e.raw("", r.Method, path, "application/json", body)
		recs := e.auditRecords()
		if auditExempt[key] != "" {
			if len(recs) != before {
				t.Errorf("%s is exempt (%s) but was audited", key, auditExempt[key])
			}
			continue
		}
		found := false
		for _, rec := range recs {
			if rec.Method == r.Method && rec.Route == r.Path {
				found = true
				if rec.Actor == "" || rec.Source == "" || rec.Outcome == "" || rec.Action == "" || rec.Time.IsZero() {
					t.Errorf("%s: incomplete record %+v", key, rec)
				}
			}
		}
		if !found {
			t.Errorf("%s (answered %d) left no audit record", key, code)
		}
	}
	if mutating < 10 {
		t.Fatalf("only %d mutating routes enumerated: the enumeration is broken", mutating)
	}
	t.Logf("%d mutating routes, each audited or exempt by name", mutating)
}

// TestDeniedAttemptsAreAudited: a read token on a write is recorded with
// its name; unauthenticated attempts are aggregated per source and minute.
func TestDeniedAttemptsAreAudited(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newFullEnv(t, Token{Name: "ops", Secret: "w", Role: RoleWrite}, Token{Name: "viewer", Secret: "r", Role: RoleRead})
	if code, _, _ := e.raw("r", "PUT", "/api/v1/apps/demo/version", "application/json", `{"version":"v2"}`); code != 403 {
		t.Fatalf("read token on a write: %d", code)
	}
	for i := 0; i < 5; i++ {
		if code, _, _ := e.raw("wrong", "POST", "/api/v1/apps/demo/abort", "", ""); code != 401 {
			t.Fatalf("bad token: %d", code)
		}
	}
	if code, _, _ := e.raw("", "DELETE", "/api/v1/apps/demo", "", ""); code != 401 {
		t.Fatal("no token accepted")
	}
	recs := e.auditRecords()
	if len(recs) != 1 || recs[0].Actor != "viewer" || recs[0].Outcome != audit.Denied || recs[0].App != "demo" || !strings.Contains(recs[0].Error, "read-only") {
		t.Fatalf("records = %+v, want one denied record for viewer", recs)
	}
	// the unauthenticated ones are counted, then written as one record
	e.denied.Flush(context.Background(), true)
	recs = e.auditRecords()
	var agg *audit.Record
	for i := range recs {
		if recs[i].Actor == audit.Unauthenticated {
			agg = &recs[i]
		}
	}
	if len(recs) != 2 || agg == nil || agg.Count != 6 || agg.Outcome != audit.Denied || agg.Source != "127.0.0.1" {
		t.Fatalf("records = %+v, want one aggregate of 6 from 127.0.0.1", recs)
	}
	if routes := fmt.Sprint(agg.Content["routes"]); !strings.Contains(routes, "POST /api/v1/apps/:app/abort:5") {
		t.Errorf("aggregate routes = %s", routes)
	}
	// a write with the write token is allowed and names ops; its content
	// is recorded, a credential-looking value is not
	spec := strings.Replace(goodSpec, "backend:", "traffic: {stickyHeader: X-User}\nbackend:", 1)
	if code, _, _ := e.raw("w", "PUT", "/api/v1/apps/demo", "application/yaml", spec); code != 200 {
		t.Fatalf("write: %d", code)
	}
	recs = e.auditRecords()
	if recs[0].Actor != "ops" || recs[0].Outcome != audit.Allowed || recs[0].Content["version"] != "v1" {
		t.Fatalf("newest = %+v", recs[0])
	}
	// filters
	got, err := e.audit.List(context.Background(), audit.Query{Actor: "viewer"})
	if err != nil || len(got) != 1 {
		t.Fatalf("by user: %v %v", got, err)
	}
	code, b, _ := e.raw("r", "GET", "/api/v1/audit?user=ops&since=1h", "", "")
	var list AuditList
	decodeJSON(t, b, &list)
	if code != 200 || len(list.Records) != 1 || list.Records[0].Actor != "ops" {
		t.Fatalf("GET audit?user=ops: %d %s", code, b)
	}
}

// TestAuditRetention: records older than the retention are pruned.
func TestAuditRetention(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newFullEnv(t)
	now := time.Now()
	old := audit.NewStore(audit.StoreConfig{Client: e.cli, Retention: time.Hour})
	for _, at := range []time.Time{now.Add(-3 * time.Hour), now.Add(-2 * time.Hour), now.Add(-time.Minute)} {
		if err := old.Append(context.Background(), audit.Record{Time: at, Actor: "ops", Action: "x", Outcome: audit.Allowed}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := old.Prune(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	if recs := e.auditRecords(); len(recs) != 1 || recs[0].Time.Before(now.Add(-time.Hour)) {
		t.Fatalf("left %+v", recs)
	}
}

// TestUnknownQueryParametersAreRefused: a mutating route refuses a query
// parameter it does not take, and nothing is written.
func TestUnknownQueryParametersAreRefused(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.do("PUT", "/api/v1/apps/demo", goodSpec); code != 200 {
		t.Fatal("seed")
	}
	before, _ := e.src.Get(context.Background(), "demo")
	for _, c := range []struct{ method, path, body, field string }{
		{"PUT", "/api/v1/apps/demo/version?dryrun=true", `{"version":"v2"}`, "query.dryrun"},
		{"PUT", "/api/v1/apps/demo/version?dryRun=yes", `{"version":"v2"}`, "query.dryRun"},
		{"POST", "/api/v1/apps/demo/abort?dryRun=true", ``, "query.dryRun"},
		{"DELETE", "/api/v1/apps/demo?force=1", ``, "query.force"},
		{"PUT", "/api/v1/apps/demo?preview=1", goodSpec, "query.preview"},
	} {
		code, body := e.do(c.method, c.path, c.body)
		if code != 400 || body["field"] != c.field {
			t.Errorf("%s %s: %d %v, want 400 field %s", c.method, c.path, code, body, c.field)
		}
	}
	after, _ := e.src.Get(context.Background(), "demo")
	if after.Version != before.Version {
		t.Fatal("a refused request changed the spec")
	}
}

// TestConfigHistoryRedactedForReaders: config history contents are whole
// only with a write token; a read token sees credential-looking keys and
// keys marked secret redacted.
func TestConfigHistoryRedactedForReaders(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newFullEnv(t, Token{Name: "ops", Secret: "w", Role: RoleWrite}, Token{Name: "viewer", Secret: "r", Role: RoleRead})
	doc := strings.Replace(configSpec, `content: "greeting: hello\n"`, `content: "greeting: hello\ndb:\n  password: hunter2\nbanner: internal-only\n"
      secrets: [banner]`, 1)
	if code, b, _ := e.raw("w", "PUT", "/api/v1/apps/demo", "application/yaml", doc); code != 200 {
		t.Fatalf("write: %d %s", code, b)
	}
	e.waitPhase("demo", "Healthy")
	for _, c := range []struct {
		token  string
		hidden bool
	}{{"w", false}, {"r", true}} {
		for _, p := range []string{"/api/v1/apps/demo/config/history/v1", "/api/v1/apps/demo/config/history/v1/files/app.yaml"} {
			code, b, _ := e.raw(c.token, "GET", p, "", "")
			if code != 200 {
				t.Fatalf("%s: %d %s", p, code, b)
			}
			shown := strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "internal-only")
			if shown == c.hidden || !strings.Contains(string(b), "hello") {
				t.Errorf("token %s, %s: secrets hidden=%v, want %v:\n%s", c.token, p, !shown, c.hidden, b)
			}
		}
	}
	// and no config content in the audit log
	for _, r := range e.auditRecords() {
		if fmt.Sprint(r.Content) != "" && strings.Contains(fmt.Sprint(r.Content), "hunter2") {
			t.Errorf("audit record carries config content: %+v", r)
		}
	}
}
