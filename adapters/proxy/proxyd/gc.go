package proxyd

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The proxy process's garbage collector. A proxy's live heap is small (a
// few MB: connections' buffers and the routes) and almost everything it
// allocates is garbage a moment later, so with GOGC's proportional pacing
// the GC runs several times a second under load, and every cycle takes
// CPU from the requests in flight: it shows as the proxy's latency tail
// (docs/benchmarks.md). With a heap budget the GC runs only when the heap
// reaches the budget: GOGC off and a memory limit of Budget. A live heap
// that grows towards the budget would make that GC run again and again
// (thrash), so above half the budget the tuner falls back to GOGC
// Percent (no limit) and returns to the budget below a quarter of it.

// Defaults of GCConfig.
const (
	DefaultGCBudget  = 64 << 20
	DefaultGCPercent = 400
	gcCheckEvery     = 250 * time.Millisecond
)

// GCConfig sizes the proxy process's garbage collector.
type GCConfig struct {
	// Budget is the memory (bytes) the process may grow to before the GC
	// runs, while the live heap is below half of it. 0: no budget, the
	// GC runs at Percent alone.
	Budget int64
	// Percent is GOGC when there is no budget or the live heap is above
	// half of it (default DefaultGCPercent).
	Percent int
	// Every is how often the live heap is checked (default 250 ms).
	Every time.Duration
}

// gcMode is how the GC is paced.
type gcMode int

const (
	gcPercent gcMode = iota // GOGC Percent, no memory limit
	gcBudget                // GOGC off, memory limit Budget
)

// nextGCMode decides the pacing for a live heap of live bytes: the budget
// while the live heap is below half of it, the percent fallback above,
// and between a quarter and a half whatever ran before (so a heap near
// the line does not flip the mode every check). Pure.
func nextGCMode(cur gcMode, live, budget int64) gcMode {
	switch {
	case budget <= 0 || live > budget/2:
		return gcPercent
	case live < budget/4:
		return gcBudget
	default:
		return cur
	}
}

func applyGCMode(m gcMode, cfg GCConfig) {
	if m == gcBudget {
		debug.SetMemoryLimit(cfg.Budget)
		debug.SetGCPercent(-1)
		return
	}
	debug.SetGCPercent(cfg.Percent)
	debug.SetMemoryLimit(math.MaxInt64)
}

// TuneGC paces the GC by cfg until ctx ends (it blocks: run it in a
// goroutine). The live heap after the last GC cycle decides between the
// budget and the percent fallback every cfg.Every.
func TuneGC(ctx context.Context, cfg GCConfig) {
	if cfg.Percent <= 0 {
		cfg.Percent = DefaultGCPercent
	}
	if cfg.Every <= 0 {
		cfg.Every = gcCheckEvery
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	live := func() int64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(sample[0].Value.Uint64())
	}
	mode := nextGCMode(gcPercent, live(), cfg.Budget)
	applyGCMode(mode, cfg)
	if cfg.Budget <= 0 {
		return
	}
	t := time.NewTicker(cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m := nextGCMode(mode, live(), cfg.Budget); m != mode {
			mode = m
			applyGCMode(mode, cfg)
		}
	}
}
