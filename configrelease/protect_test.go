package configrelease

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestHistoryPruningKeepsProtectedIdentities: pruning the config history
// beyond its limit keeps the identities the protect function names (the
// config of release revisions still kept, for a rollback to them).
func TestHistoryPruningKeepsProtectedIdentities(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	ctx := context.Background()
	s := NewEtcdStore(cli, "", WithProtect(func(ctx context.Context, app string) (map[string]bool, error) {
		return map[string]bool{"v0": true}, nil
	}))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < DefaultHistoryLimit+2; i++ {
		e := HistoryEntry{App: "demo", Identity: fmt.Sprintf("v%d", i), Version: fmt.Sprintf("v%d", i), BoundAt: at.Add(time.Duration(i) * time.Minute)}
		if err := s.PutEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := s.Entry(ctx, "demo", "v0"); !ok {
		t.Error("the protected v0 was pruned")
	}
	if _, ok, _ := s.Entry(ctx, "demo", "v1"); ok {
		t.Error("v1, the oldest unprotected entry beyond the limit, was kept")
	}
	h, _ := s.History(ctx, "demo")
	if len(h) != DefaultHistoryLimit+1 {
		t.Errorf("%d entries kept, want the limit plus the protected one", len(h))
	}
}
