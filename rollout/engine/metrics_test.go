package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
)

// The release counters and histograms are per environment (per app they
// cost 50 MB at 20,000 apps); the phase gauge stays per app.
func TestMetricsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg).For("prod")
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	before := rollout.Status{Phase: rollout.Progressing, CanaryVersion: "v2", Step: 1, StepStartedAt: t0}
	after := rollout.Status{Phase: rollout.Progressing, CanaryVersion: "v2", Step: 2, StepStartedAt: t0.Add(3 * time.Second)}
	m.observeStatus("shop", before, after, t0.Add(3*time.Second))
	m.observeStatus("cart", before, after, t0.Add(5*time.Second))
	rev := records.Revision{App: "shop", Kind: records.KindRelease, StartedAt: t0, EndedAt: t0.Add(time.Minute), Outcome: records.Promoted}
	m.observeRevisions(records.Changes{Started: []records.Revision{rev}, Ended: []records.Revision{rev}})

	want := `
# HELP graylane_rollout_phase 1 for the phase each app is in (one series per app, its current phase).
# TYPE graylane_rollout_phase gauge
graylane_rollout_phase{app="cart",env="prod",phase="Progressing"} 1
graylane_rollout_phase{app="shop",env="prod",phase="Progressing"} 1
# HELP graylane_releases_started_total Releases (revisions) started, by kind (release, rollback).
# TYPE graylane_releases_started_total counter
graylane_releases_started_total{env="prod",kind="release"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "graylane_rollout_phase", "graylane_releases_started_total"); err != nil {
		t.Error(err)
	}
	for name, n := range map[string]int{"graylane_step_duration_seconds": 1, "graylane_release_lead_time_seconds": 1} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != n {
			t.Errorf("%s: %d series (err %v), want %d: one per environment, not per app", name, got, err, n)
		}
	}
	if got := testutil.ToFloat64(m.releases.ended.WithLabelValues("prod", records.Promoted)); got != 1 {
		t.Errorf("releases ended{promoted} = %v, want 1", got)
	}
}
