package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	etcdsrc "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// fullEnv is the API with every part real except the backend: specs in
// etcd (the etcd centre), engine state in memory, release records, the
// audit log and config-in-step in the same embedded etcd.
type fullEnv struct {
	*env
	cli    *clientv3.Client
	srv    *Server
	recs   *records.Store
	audit  *audit.Store
	denied *audit.Aggregator
	ts     *httptest.Server
}

func newFullEnv(t *testing.T, tokens ...Token) *fullEnv {
	t.Helper()
	cli := etcdtest.Start(t).Client()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src := etcdsrc.New(etcdsrc.Config{Client: cli})
	t.Cleanup(func() { src.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cm, err := configrelease.New(configrelease.Config{Store: configrelease.NewEtcdStore(cli, ""), Centres: []configsync.Documents{etcdsrc.NewDocuments(cli)}})
	if err != nil {
		t.Fatal(err)
	}
	rs := records.NewStore(records.StoreConfig{Client: cli})
	as := audit.NewStore(audit.StoreConfig{Client: cli})
	agg := audit.NewAggregator(as, nil, log)
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: &instant{want: map[string]traffic.Replicas{}},
		Logger: log, Config: cm, Records: records.NewKeeper(records.KeeperConfig{Store: rs, Centre: src.Name()})})
	go eng.Run(ctx)
	s := New(Config{Engine: eng, Source: src, Writer: src, Logger: log, CommandTimeout: 5 * time.Second, Tokens: tokens,
		Config: cm, Records: rs, AuditLog: as, Denials: agg})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	select {
	case <-eng.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("engine never synced")
	}
	return &fullEnv{env: &env{t: t, eng: eng, url: ts.URL}, cli: cli, srv: s, recs: rs, audit: as, denied: agg, ts: ts}
}

// auditRecords reads the whole audit log.
func (e *fullEnv) auditRecords() []audit.Record {
	e.t.Helper()
	recs, err := e.audit.List(context.Background(), audit.Query{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// raw sends a request and returns the status and body.
func (e *fullEnv) raw(token, method, path, ctype, body string) (int, []byte, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func clientPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

// waitRevisions waits until demo has n revisions.
func (e *fullEnv) waitRevisions(n int) {
	e.t.Helper()
	testenv.Eventually(e.t, 20*time.Second, fmt.Sprintf("%d revisions", n), func() error {
		revs, err := e.recs.Revisions(context.Background(), "demo")
		if err != nil {
			return err
		}
		return testenv.Check(len(revs) == n, "%d revisions", len(revs))
	})
}
