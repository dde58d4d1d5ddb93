package records

import (
	"testing"
	"time"
)

func TestCompute(t *testing.T) {
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	sums := []Summary{
		// app a: 3 promoted (lead 60s, 120s, 600s), 1 aborted (restored 5s after), 1 rolled back in a rollback to revision 1
		{App: "a", Number: 1, Kind: KindRelease, Outcome: Promoted, SeenAt: at(20 * 24 * time.Hour), StartedAt: at(20 * 24 * time.Hour), EndedAt: at(20*24*time.Hour - time.Minute)},
		{App: "a", Number: 2, Kind: KindRelease, Outcome: Promoted, SeenAt: at(72 * time.Hour), StartedAt: at(72 * time.Hour), EndedAt: at(72*time.Hour - 2*time.Minute)},
		{App: "a", Number: 3, Kind: KindRelease, Outcome: Aborted, SeenAt: at(48 * time.Hour), StartedAt: at(48 * time.Hour), EndedAt: at(47 * time.Hour), FailedAt: at(47 * time.Hour), RestoredAt: at(47*time.Hour - 5*time.Second)},
		{App: "a", Number: 4, Kind: KindRelease, Outcome: Promoted, SeenAt: at(24 * time.Hour), StartedAt: at(24 * time.Hour), EndedAt: at(24*time.Hour - 10*time.Minute)},
		{App: "a", Number: 5, Kind: KindRollback, RollbackTo: 1, Replaces: 4, Outcome: Promoted, SeenAt: at(time.Hour), StartedAt: at(time.Hour), EndedAt: at(time.Hour - 2*time.Second)},
		// app b: superseded and one in progress; one adopted (ignored)
		{App: "b", Number: 1, Kind: KindAdopted, Outcome: Promoted, StartedAt: at(time.Hour)},
		{App: "b", Number: 2, Kind: KindRelease, Outcome: Superseded, StartedAt: at(3 * time.Hour)},
		{App: "b", Number: 3, Kind: KindRelease, StartedAt: at(2 * time.Hour)},
	}
	w7, w30 := Windows[0], Windows[1]
	a7 := Compute(sums, "a", now, w7)
	if a7.Started != 4 || a7.Promoted != 3 || a7.Aborted != 1 || a7.RolledBack != 1 || a7.Rollbacks != 1 {
		t.Errorf("a 7d counts = %+v", a7)
	}
	// lead: 120s, 600s; restore: 5s (abort), 2s (rollback)
	if a7.LeadTime != (Durations{Count: 2, Median: 120, P90: 600}) || a7.TimeToRestore != (Durations{Count: 2, Median: 2, P90: 5}) {
		t.Errorf("a 7d durations = lead %+v restore %+v", a7.LeadTime, a7.TimeToRestore)
	}
	// finished releases 3 (2, 3, 4): failures 3 (aborted) and 4 (rolled back by revision 5)
	if a7.ChangeFailureRate != 0.667 {
		t.Errorf("a 7d change failure rate = %v", a7.ChangeFailureRate)
	}
	a30 := Compute(sums, "a", now, w30)
	if a30.Started != 5 || a30.LeadTime.Count != 3 || a30.LeadTime.Median != 120 || a30.ChangeFailureRate != 0.5 {
		t.Errorf("a 30d = %+v", a30)
	}
	all := Compute(sums, "", now, w7)
	if all.Started != 6 || all.Superseded != 1 || all.InProgress != 1 {
		t.Errorf("all 7d = %+v", all)
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{50: 5, 90: 9, 100: 10, 1: 1} {
		if got := Percentile(xs, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}
