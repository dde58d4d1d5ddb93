package healthprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/graylane/graylane/spec"
)

// Spec is what to probe: Path on the instance, every Interval, each probe
// bounded by Timeout.
type Spec struct {
	Path              string
	Interval, Timeout time.Duration
}

// SpecOf returns the probe a release's health section asks for, with the
// defaults for what it leaves out.
func SpecOf(h spec.Health) Spec {
	s := Spec{Path: spec.DefaultHealthPath, Interval: spec.DefaultHealthInterval, Timeout: spec.DefaultHealthTimeout}
	if h.Path != "" {
		s.Path = h.Path
	}
	if h.Interval != nil && h.Interval.Duration > 0 {
		s.Interval = h.Interval.Duration
	}
	if h.Timeout != nil && h.Timeout.Duration > 0 {
		s.Timeout = h.Timeout.Duration
	}
	return s
}

// Prober sends health probes. It is safe for concurrent use.
type Prober struct {
	client *http.Client
}

// New returns a Prober sending its requests with client; nil means a
// client that uses no proxy and no keep-alive, so that an instance
// restarted on the same address is probed on a fresh connection.
func New(client *http.Client) *Prober {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	}
	return &Prober{client: client}
}

// bodyLimit is how much of an unhealthy answer's body goes into its error.
const bodyLimit = 256

// Check sends one probe: GET http://addr+s.Path, bounded by s.Timeout (and
// ctx). A 2xx answer is healthy (nil). Otherwise the error says why, for
// an instance's message: an answer's status and the start of its body
// ("503 Service Unavailable: draining"), or the request's cause without
// the URL ("dial tcp 127.0.0.1:9: connect: connection refused"); callers
// name the instance. Check does not retry.
func (p *Prober) Check(ctx context.Context, addr string, s Spec) error {
	if addr == "" {
		return errors.New("no address to probe")
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+s.Path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop `Get "url":`, keep the cause
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
	if msg := strings.Join(strings.Fields(string(body)), " "); msg != "" {
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return errors.New(resp.Status)
}

// firstFast is the wait after the first probe of an instance that has not
// passed one yet; it doubles with each probe up to the interval.
const firstFast = 50 * time.Millisecond

// Streak is the run of probe results of one instance (one process: a new
// process starts a new Streak). The zero value is an instance not probed
// yet. It is not safe for concurrent use; its owner guards it.
type Streak struct {
	fails  int
	passed bool
	fast   time.Duration
}

// Record folds one probe's result into the streak and returns the
// instance's readiness after it, given its readiness before it (which the
// owner may have changed meanwhile: a stopping instance is unready
// whatever its probes say):
//
//   - a passing probe makes it ready;
//   - a failing probe makes it unready, unless it was ready and fewer than
//     threshold probes in a row (this one included) have failed: one
//     failed probe does not take a serving instance out of traffic.
//
// A threshold below 1 counts as 1.
func (s *Streak) Record(wasReady bool, err error, threshold int) bool {
	if err == nil {
		s.fails, s.passed = 0, true
		return true
	}
	s.fails++
	return wasReady && s.fails < max(threshold, 1)
}

// Judged reports whether the probes so far say anything about the
// instance: one has passed, or threshold have failed in a row (a threshold
// below 1 counts as 1). Before that, an instance graylane adopted after a
// restart has its health pending (adapters.MetaHealthPending): it may well
// be serving, and Record is given wasReady true for it so that its first
// failures count as they would for a ready instance.
func (s *Streak) Judged(threshold int) bool {
	return s.passed || s.fails >= max(threshold, 1)
}

// Passed reports whether a probe has passed in this streak.
func (s *Streak) Passed() bool { return s.passed }

// Fails is the number of failed probes in a row.
func (s *Streak) Fails() int { return s.fails }

// Next returns the wait before the next probe: the interval once a probe
// has passed; before that 50ms after the first probe, doubling with each
// one, up to the interval, so a starting instance is found ready soon
// after it is.
func (s *Streak) Next(interval time.Duration) time.Duration {
	if s.passed {
		return interval
	}
	if s.fast == 0 {
		s.fast = firstFast
	}
	if s.fast >= interval {
		return interval
	}
	next := s.fast
	s.fast *= 2
	return next
}
