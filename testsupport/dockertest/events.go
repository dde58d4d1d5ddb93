package dockertest

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Event is one container event of the engine.
type Event struct {
	At     time.Time
	Action string // create, start, die, kill, stop, destroy, ...
	ID     string // container ID
	Name   string // container name
	Labels map[string]string
}

// EventLog records an engine's container events as they happen. (The
// engine keeps only its last 256 events, and HEALTHCHECK runs fill them
// quickly, so a test that counts creates and starts must listen from the
// start.)
type EventLog struct {
	mu     sync.Mutex
	events []Event
	err    error
}

// WatchEvents starts recording the container events whose container
// carries label (key=value, or "" for all) until the test ends. It returns
// once the engine streams.
func (e *Engine) WatchEvents(t testing.TB, label string) *EventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := filters.NewArgs(filters.Arg("type", "container"))
	if label != "" {
		f.Add("label", label)
	}
	msgs, errs := e.cli.Events(ctx, events.ListOptions{Filters: f})
	l := &EventLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				ev := Event{At: time.Unix(0, m.TimeNano), Action: string(m.Action), ID: m.Actor.ID, Name: m.Actor.Attributes["name"], Labels: m.Actor.Attributes}
				l.mu.Lock()
				l.events = append(l.events, ev)
				l.mu.Unlock()
			case err := <-errs:
				if err != nil && err != io.EOF && ctx.Err() == nil {
					l.mu.Lock()
					l.err = err
					l.mu.Unlock()
				}
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l // Events returned: the engine has subscribed us
}

// Events returns what was recorded so far, oldest first; it fails the
// test if the stream broke.
func (l *EventLog) Events(t testing.TB) []Event {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		t.Fatalf("engine events: %v", l.err)
	}
	return append([]Event(nil), l.events...)
}

// Count counts events by container name for one action.
func Count(evs []Event, action string) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		if e.Action == action {
			out[e.Name]++
		}
	}
	return out
}
