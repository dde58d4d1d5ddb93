package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Eventually's pace: the first retry comes after MinPollInterval, and each
// pause is half as long again as the one before, up to MaxPollInterval. A
// state that appears at once is seen at once, and a long wait (a rollout,
// a centre coming back) costs at most MaxPollInterval of extra latency
// without hammering the server it asks.
const (
	MinPollInterval = 10 * time.Millisecond
	MaxPollInterval = 200 * time.Millisecond
)

// Eventually is graylane's one polling helper for tests. It calls cond on
// the test's goroutine, at once and then at the pace above, until cond
// returns nil; when within has passed it fails t with what and cond's last
// error, which should say what was seen instead ("phase Progressing, want
// Healthy"). It never sleeps after success, so a fast condition costs no
// time, and it is not a timing assertion: within is a bound for a broken
// run, chosen generously for a loaded machine.
//
// Use it for states to appear (a version healthy, a key written, a process
// gone). To show that something did NOT happen, wait instead for a positive
// event that proves the system has seen everything it will see (a long poll
// held at the latest notification, a server tick) and then assert; never
// sleep and hope.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := Poll(ctx, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, within, err)
	}
}

// Poll is the loop under Eventually, for test-support code that reports an
// error instead of failing a test (a server's start-up wait): it calls cond
// at once and then at Eventually's pace until cond returns nil, and returns
// nil then; when ctx ends first it returns cond's last error. An error
// made with Stop ends the wait at once (the server being waited for
// exited): Poll returns it and Eventually fails with it.
func Poll(ctx context.Context, cond func() error) error {
	pause := MinPollInterval
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if errors.As(err, new(stopError)) {
			return err
		}
		timer.Reset(pause)
		select {
		case <-ctx.Done():
			return err
		case <-timer.C:
		}
		pause = min(pause+pause/2, MaxPollInterval)
	}
}

// Stop wraps err so that Poll and Eventually stop waiting at once: the
// condition can no longer come true (the process being waited for exited).
func Stop(err error) error { return stopError{err} }

type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// Check adapts a boolean condition for Eventually: nil when ok, otherwise
// an error formatted from format and args (say what was seen).
func Check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}
