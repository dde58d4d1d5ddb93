// Health: the HTTP check of a switched host, polled until it passes or
// the spec's health timeout.

package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/graylane/graylane/spec"
)

// ErrHealthCheck: a switched host did not pass its health check in time.
var ErrHealthCheck = errors.New("health check failed")

// probe sends one health check.
func (b *Backend) probe(ctx context.Context, h host, rel *spec.Release) error {
	if h.appAddr == "" {
		return errors.New("no app address to check")
	}
	p := rel.Health.Path
	if p == "" {
		p = spec.DefaultHealthPath
	}
	timeout := spec.DefaultHealthTimeout
	if rel.Health.Timeout != nil {
		timeout = rel.Health.Timeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + h.appAddr + p
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// waitHealthy polls the health check until it passes, probing every 20ms
// at first and backing off to health.interval, for at most healthTimeout.
func (b *Backend) waitHealthy(ctx context.Context, h host, rel *spec.Release) error {
	limit := rel.Backend.SSH.EffectiveHealthTimeout()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	interval := spec.DefaultHealthInterval
	if rel.Health.Interval != nil {
		interval = rel.Health.Interval.Duration
	}
	wait := 20 * time.Millisecond
	for {
		err := b.probe(ctx, h, rel)
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			return fmt.Errorf("%w within %v: %v", ErrHealthCheck, limit, err)
		case <-t.C:
		}
		wait = min(wait*2, interval)
	}
}
