package audit

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/internal/logx"
)

// Appender writes records (Store).
type Appender interface {
	Append(ctx context.Context, r Record) error
}

// Aggregator counts unauthenticated denials per source address and
// minute and writes one record per bucket when its minute is over, so a
// scan or a misconfigured client cannot flood the log.
type Aggregator struct {
	out Appender
	clk clock.Clock
	log *slog.Logger

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

type bucketKey struct {
	source string
	minute int64
}

type bucket struct {
	count  int
	routes map[string]int
	reason string
}

// NewAggregator returns an Aggregator writing to out.
func NewAggregator(out Appender, clk clock.Clock, log *slog.Logger) *Aggregator {
	return &Aggregator{out: out, clk: clock.Or(clk), log: logx.OrDiscard(log), buckets: map[bucketKey]*bucket{}}
}

// Deny counts one unauthenticated request from source to route.
func (a *Aggregator) Deny(source, route, reason string) {
	k := bucketKey{source: source, minute: a.clk.Now().Unix() / 60}
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.buckets[k]
	if b == nil {
		b = &bucket{routes: map[string]int{}}
		a.buckets[k] = b
	}
	b.count++
	b.routes[route]++
	b.reason = reason
}

// Flush writes the buckets of minutes that are over (all with final).
func (a *Aggregator) Flush(ctx context.Context, final bool) {
	now := a.clk.Now().Unix() / 60
	a.mu.Lock()
	var done []bucketKey
	for k := range a.buckets {
		if final || k.minute < now {
			done = append(done, k)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].minute < done[j].minute })
	out := make([]Record, 0, len(done))
	for _, k := range done {
		b := a.buckets[k]
		delete(a.buckets, k)
		routes := map[string]any{}
		for r, n := range b.routes {
			routes[r] = n
		}
		out = append(out, Record{Time: time.Unix(k.minute*60, 0).UTC(), Actor: Unauthenticated, Via: "api", Source: k.source,
			Action: "unauthenticated requests (one record per source and minute)", Outcome: Denied, Status: 401,
			Error: b.reason, Count: b.count, Content: map[string]any{"routes": routes}})
	}
	a.mu.Unlock()
	for _, r := range out {
		if err := a.out.Append(ctx, r); err != nil {
			a.log.Error("write aggregated audit record", "source", r.Source, "count", r.Count, "err", err)
		}
	}
}

// Run flushes finished minutes until ctx ends, then flushes everything.
func (a *Aggregator) Run(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			a.Flush(fctx, true)
			cancel()
			return
		case <-t.C:
			a.Flush(ctx, false)
		}
	}
}
