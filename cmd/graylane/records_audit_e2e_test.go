package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestEndToEndAuditAndRevisionsSurviveRestart: with tokens configured,
// allowed, failed and denied requests and an edit made in the centre
// behind graylane's API are in the audit log (the unauthenticated ones
// as one aggregated record); graylane restarts and the audit log and the
// revisions are still there.
func TestEndToEndAuditAndRevisionsSurviveRestart(t *testing.T) {
	testenv.IntegrationTest(t)
	proxy := testenv.FreePort(t)
	g := graylanetest.Start(t, graylanetest.Options{Config: map[string]any{
		"http": map[string]any{"tokens": []map[string]any{{"name": "ops", "token": "w-secret", "role": "write"}, {"name": "viewer", "token": "r-secret", "role": "read"}}},
	}})
	ops, viewer := client.New(g.APIURL).WithToken("w-secret"), client.New(g.APIURL).WithToken("r-secret")
	ctx := context.Background()
	spec := func(v string) string {
		return strings.NewReplacer("VERSION", v, "PORT", itoa(proxy)).Replace(`app: audited
version: VERSION
replicas: 1
backend:
  type: process
  process: {command: ["./bin/demoapp", "--version={{.Version}}", "--addr={{.Addr}}"], proxy: "127.0.0.1:PORT"}
health: {path: /healthz, interval: 200ms}
`)
	}
	if err := ops.PutSpec(ctx, "audited", []byte(spec("v1"))); err != nil {
		t.Fatal(err)
	}
	waitForWith(t, ops, "audited", "v1 healthy", "v1")
	if err := viewer.SetVersion(ctx, "audited", "v2"); err == nil {
		t.Fatal("a read token changed the version")
	}
	for i := 0; i < 3; i++ {
		if err := client.New(g.APIURL).WithToken("guess").SetVersion(ctx, "audited", "v6"); err == nil {
			t.Fatal("an unknown token changed the version")
		}
	}
	if err := ops.SetVersion(ctx, "audited", "v 2"); err == nil {
		t.Fatal("a bad version was accepted")
	}
	if err := ops.SetVersion(ctx, "audited", "v2"); err != nil {
		t.Fatal(err)
	}
	waitForWith(t, ops, "audited", "v2 healthy", "v2")
	// an edit behind graylane's API, as etcdctl would make it
	g.PutSpec("audited", spec("v3"))
	waitForWith(t, ops, "audited", "v3 healthy", "v3")

	g.Stop() // graceful: the aggregated denials are flushed
	g.Restart()

	recs, err := viewer.Audit(ctx, client.AuditQuery{App: "", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var agg, centre *audit.Record
	for i, r := range recs {
		got = append(got, r.Actor+" "+r.Outcome+" "+r.Action)
		switch {
		case r.Actor == audit.Unauthenticated:
			agg = &recs[i]
		case strings.HasPrefix(r.Actor, audit.CentrePrefix):
			centre = &recs[i]
		}
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"ops allowed write release spec to etcd", "viewer denied set version", "ops failed set version",
		"ops allowed set version v2", "centre:etcd allowed release document edited in etcd"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit log after a restart lacks %q:\n%s", want, joined)
		}
	}
	if agg == nil || agg.Count != 3 || agg.Outcome != audit.Denied {
		t.Errorf("aggregated unauthenticated record: %+v", agg)
	}
	if centre == nil || !strings.Contains(centre.Diff, "-version: v2") || !strings.Contains(centre.Diff, "+version: v3") {
		t.Errorf("centre edit record: %+v", centre)
	}
	revs, err := viewer.Revisions(ctx, "audited")
	if err != nil || len(revs) != 3 || revs[0].Cause.Kind != "centre" || revs[1].Cause.Actor != "ops" {
		t.Fatalf("revisions after a restart: %v %+v", err, revs)
	}
	out, code := cli(t, g, "--token", "r-secret", "audit", "--user", "viewer")
	if code != 0 || !strings.Contains(out, "denied") || strings.Contains(out, "ops ") {
		t.Errorf("graylane audit --user viewer: exit %d\n%s", code, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// waitForWith waits until app runs version, Healthy.
func waitForWith(t *testing.T, c *client.Client, app, what, version string) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, what, func() error {
		v, err := c.App(context.Background(), app)
		if err != nil {
			return err
		}
		return testenv.Check(healthyAt(version)(v), "status %+v", v.Status)
	})
}
