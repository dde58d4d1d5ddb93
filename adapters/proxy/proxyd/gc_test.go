package proxyd

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

// TestNextGCMode: the budget while the live heap is below half of it, the
// percent fallback above half, and no flip-flopping between a quarter and
// a half.
func TestNextGCMode(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		name         string
		cur          gcMode
		live, budget int64
		want         gcMode
	}{
		{"small heap: budget", gcPercent, 3 * mb, 64 * mb, gcBudget},
		{"no budget: percent", gcBudget, 3 * mb, 0, gcPercent},
		{"heap above half: percent", gcBudget, 33 * mb, 64 * mb, gcPercent},
		{"between: keeps budget", gcBudget, 20 * mb, 64 * mb, gcBudget},
		{"between: keeps percent", gcPercent, 20 * mb, 64 * mb, gcPercent},
		{"heap shrank below a quarter: budget again", gcPercent, 15 * mb, 64 * mb, gcBudget},
	} {
		if got := nextGCMode(c.cur, c.live, c.budget); got != c.want {
			t.Errorf("%s: nextGCMode(%v, %d, %d) = %v, want %v", c.name, c.cur, c.live, c.budget, got, c.want)
		}
	}
}

// TestTuneGCApplies: with a budget far above the test's live heap the GC
// is off and the memory limit is the budget; with a budget below the live
// heap the percent fallback is in force and there is no limit.
func TestTuneGCApplies(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // apply the first decision only
	TuneGC(ctx, GCConfig{Budget: 1 << 40, Percent: 300})
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("memory limit with a large budget = %d, want %d", got, int64(1<<40))
	}
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC with a large budget = %d, want off (-1)", got)
	}
	TuneGC(ctx, GCConfig{Budget: 1, Percent: 300, Every: time.Millisecond})
	if got := debug.SetGCPercent(-1); got != 300 {
		t.Errorf("GOGC with a budget below the live heap = %d, want the fallback 300", got)
	}
	if got := debug.SetMemoryLimit(-1); got < 1<<62 {
		t.Errorf("memory limit in the fallback = %d, want none", got)
	}
}
