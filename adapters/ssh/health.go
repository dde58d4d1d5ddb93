// Health: the HTTP check of a switched host, polled until it passes or
// the spec's health timeout.

package ssh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/spec"
)

// ErrHealthCheck: a switched host did not pass its health check in time.
var ErrHealthCheck = errors.New("health check failed")

// probe sends one health check.
func (b *Backend) probe(ctx context.Context, h host, rel *spec.Release) error {
	if h.appAddr == "" {
		return errors.New("no app address to check")
	}
	hs := healthprobe.SpecOf(rel.Health)
	if err := b.prober.Check(ctx, h.appAddr, hs); err != nil {
		return fmt.Errorf("health check http://%s%s: %w", h.appAddr, hs.Path, err)
	}
	return nil
}

// waitHealthy polls the health check until it passes, probing every 20ms
// at first and backing off to health.interval, for at most healthTimeout.
func (b *Backend) waitHealthy(ctx context.Context, h host, rel *spec.Release) error {
	limit := rel.Backend.SSH.EffectiveHealthTimeout()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	interval := healthprobe.SpecOf(rel.Health).Interval
	wait := 20 * time.Millisecond
	var answered error // the last probe that ended before the deadline: what the app said
	for {
		err := b.probe(ctx, h, rel)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			answered = err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			// A probe cut short by the deadline says less than the last
			// one that got an answer (a 503, a refused connection).
			if answered != nil {
				err = answered
			}
			return fmt.Errorf("%w within %v: %v", ErrHealthCheck, limit, err)
		case <-t.C:
		}
		wait = min(wait*2, interval)
	}
}
