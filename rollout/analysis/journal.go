package analysis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/rollout"
)

// Journal keeps each app's analysis results outside the process, so that a
// graylane restarted after a crash (or a new leader) continues the counts
// of a running analysis instead of starting them over: a check that had
// failed twice in a row is still at two, an analysis step that had three of
// its five successes still needs two.
//
// Implementations store opaque bytes per app; etcdstore.Journal is the etcd
// one. Load returns nil, nil when the app has no entry. Save replaces the
// entry. Delete is idempotent.
type Journal interface {
	Load(ctx context.Context, app string) ([]byte, error)
	Save(ctx context.Context, app string, data []byte) error
	Delete(ctx context.Context, app string) error
}

// JournalKind is the schema of journal entries:
//
//	0  entries of graylane before versions existed (no "schema" member)
//	1  "schema": 1, otherwise the same
func JournalKind() schema.Kind {
	return schema.Kind{Name: "analysis-journal", What: "analysis journal entry", Current: 1, Unversioned: 0,
		Steps: []schema.Step{{Change: `the "schema" member`}}}
}

// journalTimeout bounds one journal call.
const journalTimeout = 5 * time.Second

// entry is what a Runner journals per app.
type entry struct {
	// Key identifies the analysis (versions and checks); results of
	// another analysis are never restored.
	Key     string                         `json:"key"`
	Results map[string]rollout.CheckResult `json:"results"`
}

func digest(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// restore returns the journaled results of app if they belong to the
// analysis identified by key.
func (r *Runner) restore(ctx context.Context, app, key string) (map[string]rollout.CheckResult, error) {
	ctx, cancel := context.WithTimeout(ctx, journalTimeout)
	defer cancel()
	b, err := r.journal.Load(ctx, app)
	if err != nil || b == nil {
		return nil, err
	}
	cur, _, err := JournalKind().Decode(b)
	if err != nil {
		return nil, fmt.Errorf("journaled analysis of %s: %w", app, err)
	}
	var e entry
	if err := json.Unmarshal(cur, &e); err != nil {
		return nil, fmt.Errorf("decode journaled analysis of %s: %w", app, err)
	}
	if e.Key != digest(key) {
		return nil, nil
	}
	return e.Results, nil
}

func (r *Runner) save(ctx context.Context, app, key string, results map[string]rollout.CheckResult) error {
	b, err := json.Marshal(entry{Key: digest(key), Results: results})
	if err == nil {
		b, err = JournalKind().Encode(b, JournalKind().Current)
	}
	if err != nil {
		return fmt.Errorf("encode analysis of %s: %w", app, err)
	}
	ctx, cancel := context.WithTimeout(ctx, journalTimeout)
	defer cancel()
	return r.journal.Save(ctx, app, b)
}

// lastRun is the time of the latest run among results.
func lastRun(results map[string]rollout.CheckResult) time.Time {
	var last time.Time
	for _, res := range results {
		if n := len(res.Runs); n > 0 && res.Runs[n-1].At.After(last) {
			last = res.Runs[n-1].At
		}
	}
	return last
}
