// Package clock is graylane's one way to inject time: components that
// stamp, schedule or compare business times (the engine, configrelease,
// analysis, the webhook and gray-routing adapters) take a Clock in their
// Config, and tests pass a fake one. Timeouts and deadlines for I/O use
// context deadlines, not a Clock.
//
// Entry points: Clock, Real, Func and Or.
package clock

import "time"

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Real is the system clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// Func adapts a function to a Clock (a test's fake: clock.Func(fake.Now)).
type Func func() time.Time

// Now implements Clock.
func (f Func) Now() time.Time { return f() }

// Or returns c, or the real clock when c is nil: what every Config
// defaults to.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
