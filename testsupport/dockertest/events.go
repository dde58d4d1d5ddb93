package dockertest

import (
	"context"
	"fmt"
	"io"
	"strconv"
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

// ContainerEvents returns the engine's container events between since and
// now whose container carries label (key=value, or "" for all), oldest
// first. Tests use it to count how often a slot's container was created
// and started.
func (e *Engine) ContainerEvents(t testing.TB, since time.Time, label string) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("type", "container"))
	if label != "" {
		f.Add("label", label)
	}
	until := time.Now().Add(time.Second) // the engine's clock is ours; a margin for the last events
	msgs, errs := e.cli.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(since.Unix(), 10),
		Until:   fmt.Sprintf("%d.%09d", until.Unix(), until.Nanosecond()),
		Filters: f,
	})
	var out []Event
	for {
		select {
		case m := <-msgs:
			ev := Event{At: time.Unix(0, m.TimeNano), Action: string(m.Action), ID: m.Actor.ID, Name: m.Actor.Attributes["name"], Labels: m.Actor.Attributes}
			if !ev.At.Before(since) {
				out = append(out, ev)
			}
		case err := <-errs:
			if err != nil && err != io.EOF {
				t.Fatalf("engine events: %v", err)
			}
			return out
		}
	}
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
