package records

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

const benchSpec = `app: shop-%02d
version: v%d
replicas: 4
strategy:
  steps: [{setWeight: 10}, {pause: {duration: 1m}}, {setWeight: 50}, {pause: {}}, {setWeight: 100}]
  scaleDownDelay: 30s
  analysis:
    checks:
      - name: smoke
        http: {url: "http://127.0.0.1:8081/healthz", headers: {X-Graylane-Version: "{{.Version}}"}}
backend:
  type: process
  process: {command: ["./bin/shop", "--version={{.Version}}", "--addr={{.Addr}}"], proxy: 127.0.0.1:8081}
health: {path: /healthz}
config:
  files:
    - {name: application.yaml, content: "greeting: hello %d\ncheckout: {timeout: 3s}\n"}
    - {name: limits.json, content: "{\"rps\": %d}"}
  targets: [{etcd: {key: "/config/{{.App}}/{{.File}}"}}, {nacos: {dataId: "{{.App}}-{{.File}}"}}]
`

// BenchmarkStoragePer1000Releases writes what 1,000 canary releases leave
// in etcd (20 apps × 50 releases, all kept at the default retention): a
// revision each (spec text, diff, five steps, a verdict, bound config),
// its statistics summary, and three audit records (set version, promote,
// and one denied attempt), then reports the bytes (keys and values) under
// each prefix.
func BenchmarkStoragePer1000Releases(b *testing.B) {
	testenv.IntegrationTest(b)
	for i := 0; i < b.N; i++ {
		cli := etcdtest.Start(b).Client()
		ctx := context.Background()
		rs := NewStore(StoreConfig{Client: cli})
		as := audit.NewStore(audit.StoreConfig{Client: cli})
		start := time.Now().Add(-24 * time.Hour)
		prev := map[string]string{}
		for n := 1; n <= 1000; n++ {
			app := n % 20
			num := (n-1)/20 + 1
			rel, err := spec.Parse([]byte(fmt.Sprintf(benchSpec, app, num, num, num)))
			if err != nil {
				b.Fatal(err)
			}
			at := start.Add(time.Duration(n) * time.Minute)
			text := SpecText(rel)
			r := Revision{App: rel.App, Number: num, Kind: KindRelease, Version: rel.Version, Identity: rel.Version,
				Config: &ConfigRef{Identity: rel.Version, Digest: fmt.Sprintf("%064x", n), Files: []FileRef{
					{Name: "application.yaml", Format: "yaml", SHA256: fmt.Sprintf("%064x", n+1), Bytes: 40},
					{Name: "limits.json", Format: "json", SHA256: fmt.Sprintf("%064x", n+2), Bytes: 12}}},
				SpecDigest: rel.Hash(), Spec: text, SpecDiff: diffSpecs(prev[rel.App], text, num-1),
				Cause:    Cause{Kind: CauseAPI, Actor: "ops", Via: "api", Action: "set-version", Centre: "etcd", DocumentVersion: fmt.Sprint(1000 + n), DocumentRevision: int64(1000 + n)},
				Replaces: num - 1, Strategy: "canary", SeenAt: at, StartedAt: at, EndedAt: at.Add(3 * time.Minute), Outcome: Promoted,
				Verdicts: []Verdict{{Check: "smoke", Runs: 12, OK: true, At: at.Add(2 * time.Minute)}}}
			for s, name := range []string{"setWeight 10", "pause 1m0s", "setWeight 50", "pause (until promoted)", "setWeight 100"} {
				r.Steps = append(r.Steps, StepRecord{Index: s, Name: name, StartedAt: at.Add(time.Duration(s) * 30 * time.Second), EndedAt: at.Add(time.Duration(s+1) * 30 * time.Second)})
			}
			prev[rel.App] = text
			if err := rs.Put(ctx, r); err != nil {
				b.Fatal(err)
			}
			for _, a := range []audit.Record{
				{Time: at, Actor: "ops", Via: "api", Source: "10.0.0.7", Method: "PUT", Route: "/api/v1/apps/:app/version", Action: "set version " + rel.Version,
					App: rel.App, Target: "/api/v1/apps/" + rel.App + "/version", Outcome: audit.Allowed, Status: 200, Content: map[string]any{"version": rel.Version}},
				{Time: at.Add(2 * time.Minute), Actor: "ops", Via: "console", Source: "10.0.0.7", Method: "POST", Route: "/api/v1/apps/:app/promote", Action: "promote",
					App: rel.App, Target: "/api/v1/apps/" + rel.App + "/promote", Outcome: audit.Allowed, Status: 200, Content: map[string]any{"command": "promote"}},
				{Time: at.Add(time.Minute), Actor: "viewer", Via: "api", Source: "10.0.0.9", Method: "POST", Route: "/api/v1/apps/:app/abort", Action: "abort",
					App: rel.App, Target: "/api/v1/apps/" + rel.App + "/abort", Outcome: audit.Denied, Status: 403, Error: `token "viewer" is read-only`},
			} {
				if err := as.Append(ctx, a); err != nil {
					b.Fatal(err)
				}
			}
		}
		report := func(name, prefix string) {
			resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
			if err != nil {
				b.Fatal(err)
			}
			size := 0
			for _, kv := range resp.Kvs {
				size += len(kv.Key) + len(kv.Value)
			}
			b.ReportMetric(float64(size), name+"-bytes/1000releases")
			b.ReportMetric(float64(len(resp.Kvs)), name+"-keys")
		}
		report("revisions", DefaultPrefix+"revisions/")
		report("summaries", DefaultPrefix+"releases/")
		report("audit", audit.DefaultPrefix)
	}
}
