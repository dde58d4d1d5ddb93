package sourcetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
)

// Collector consumes a watch channel and keeps what it delivered: the
// current state per app (a configsync.State), every response, the effective
// deliveries per app, and any contract violation:
//
//   - a response's Revision lower than an earlier one;
//   - outside a Reset, a Put of the content the app already holds, or a
//     Delete of an app that holds nothing (a duplicate);
//   - a Put whose Entry.Revision is lower than the held one (an older state
//     after a newer one);
//   - an Err that does not wrap configsync.ErrUnavailable.
//
// Violations fail the test at cleanup (and whenever Check is called). All
// methods are safe for concurrent use.
type Collector struct {
	mu         sync.Mutex
	state      *configsync.State
	responses  []configsync.WatchResponse
	deliveries map[string][]configsync.Event
	problems   []string
	lastRev    int64
	updated    chan struct{} // closed and replaced on every response
	closed     chan struct{} // closed when the watch channel is
}

// Collect starts consuming ch with an empty state (a watch started at
// revision 0).
func Collect(t testing.TB, ch <-chan configsync.WatchResponse) *Collector {
	return CollectFrom(t, ch, nil)
}

// CollectFrom starts consuming ch with held as what the consumer already
// holds (a watch resumed from held.Revision()). held is copied.
func CollectFrom(t testing.TB, ch <-chan configsync.WatchResponse, held *configsync.State) *Collector {
	t.Helper()
	st := configsync.NewState()
	if held != nil {
		st = held.Clone()
	}
	c := &Collector{
		state:      st,
		deliveries: map[string][]configsync.Event{},
		lastRev:    st.Revision(),
		updated:    make(chan struct{}),
		closed:     make(chan struct{}),
	}
	go func() {
		defer close(c.closed)
		for r := range ch {
			c.add(r)
		}
	}()
	t.Cleanup(func() { c.Check(t) })
	return c
}

func (c *Collector) add(r configsync.WatchResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.responses)
	c.responses = append(c.responses, r)
	if r.Err != nil && !errors.Is(r.Err, configsync.ErrUnavailable) {
		c.problemf("response %d: Err %v does not wrap configsync.ErrUnavailable", n, r.Err)
	}
	if r.Revision != 0 && r.Revision < c.lastRev {
		c.problemf("response %d: revision %d after revision %d", n, r.Revision, c.lastRev)
	}
	c.lastRev = max(c.lastRev, r.Revision)
	if r.Reset {
		for _, ev := range r.Events {
			if held, ok := c.state.Get(ev.Entry.App); ok && ev.Type == configsync.Put &&
				held.Revision != 0 && ev.Entry.Revision != 0 && ev.Entry.Revision < held.Revision {
				c.problemf("response %d (reset): app %s at revision %d after revision %d", n, ev.Entry.App, ev.Entry.Revision, held.Revision)
			}
		}
		for _, ev := range c.state.Apply(r) {
			c.deliveries[ev.Entry.App] = append(c.deliveries[ev.Entry.App], ev)
		}
	} else {
		for _, ev := range r.Events {
			app := ev.Entry.App
			held, ok := c.state.Get(app)
			switch {
			case ev.Type == configsync.Delete && !ok:
				c.problemf("response %d: duplicate delete of %s, which holds no document", n, app)
			case ev.Type == configsync.Put && ok && bytes.Equal(held.Data, ev.Entry.Data):
				c.problemf("response %d: duplicate delivery of %s: same content %q again", n, app, clip(ev.Entry.Data))
			case ev.Type == configsync.Put && ok && held.Revision != 0 && ev.Entry.Revision != 0 && ev.Entry.Revision < held.Revision:
				c.problemf("response %d: %s at revision %d after revision %d", n, app, ev.Entry.Revision, held.Revision)
			}
			c.state.Apply(configsync.WatchResponse{Events: []configsync.Event{ev}, Revision: r.Revision})
			c.deliveries[app] = append(c.deliveries[app], ev)
		}
	}
	close(c.updated)
	c.updated = make(chan struct{})
}

func (c *Collector) problemf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Check fails t for every violation recorded so far (each reported once).
func (c *Collector) Check(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	problems := c.problems
	c.problems = nil
	c.mu.Unlock()
	for _, p := range problems {
		t.Errorf("watch contract violated: %s", p)
	}
}

// Problems returns the violations recorded and not yet reported by Check.
func (c *Collector) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.problems)
}

// State returns a copy of the current state.
func (c *Collector) State() *configsync.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Clone()
}

// Get returns app's current document as delivered.
func (c *Collector) Get(app string) (configsync.Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Get(app)
}

// Revision returns the revision to resume from.
func (c *Collector) Revision() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Revision()
}

// Responses returns every response received so far.
func (c *Collector) Responses() []configsync.WatchResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.responses)
}

// Deliveries returns the effective deliveries for app, in order: every
// event outside a Reset, and what each Reset changed.
func (c *Collector) Deliveries(app string) []configsync.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.deliveries[app])
}

// Data returns the content of app's Put deliveries, in order, as strings.
func (c *Collector) Data(app string) []string {
	var out []string
	for _, ev := range c.Deliveries(app) {
		if ev.Type == configsync.Put {
			out = append(out, string(ev.Entry.Data))
		}
	}
	return out
}

// Errs returns the Err of every response that carried one.
func (c *Collector) Errs() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []error
	for _, r := range c.responses {
		if r.Err != nil {
			out = append(out, r.Err)
		}
	}
	return out
}

// Err returns the last response's Err: nil while the watch is healthy.
func (c *Collector) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.responses); n > 0 {
		return c.responses[n-1].Err
	}
	return nil
}

// Closed is closed when the watch channel has been closed.
func (c *Collector) Closed() <-chan struct{} { return c.closed }

// Until waits up to within for cond (called with the lock held, after every
// response and once at the start) to hold, failing t with what otherwise.
// cond must not call the Collector's methods.
func (c *Collector) Until(t testing.TB, within time.Duration, what string, cond func(*configsync.State) bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.state)
		updated := c.updated
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-updated:
		case <-c.closed:
			c.mu.Lock()
			ok := cond(c.state)
			c.mu.Unlock()
			if !ok {
				t.Fatalf("watch closed before %s; state: %s", what, c.describe())
			}
			return
		case <-deadline.C:
			t.Fatalf("not %s within %s; state: %s", what, within, c.describe())
		}
	}
}

// WaitData waits until app's delivered content is data and returns its entry.
func (c *Collector) WaitData(t testing.TB, app string, data []byte, within time.Duration) configsync.Entry {
	t.Helper()
	c.Until(t, within, fmt.Sprintf("delivered %s = %q", app, clip(data)), func(s *configsync.State) bool {
		e, ok := s.Get(app)
		return ok && bytes.Equal(e.Data, data)
	})
	e, _ := c.Get(app)
	return e
}

// WaitGone waits until app holds no document.
func (c *Collector) WaitGone(t testing.TB, app string, within time.Duration) {
	t.Helper()
	c.Until(t, within, "delivered removal of "+app, func(s *configsync.State) bool {
		_, ok := s.Get(app)
		return !ok
	})
}

// WaitResponses waits until at least n responses have arrived.
func (c *Collector) WaitResponses(t testing.TB, n int, within time.Duration) {
	t.Helper()
	c.UntilResponses(t, within, fmt.Sprintf("%d responses", n), func(rs []configsync.WatchResponse) bool { return len(rs) >= n })
}

// WaitErr waits for a response carrying an Err and returns it.
func (c *Collector) WaitErr(t testing.TB, within time.Duration) error {
	t.Helper()
	var got error
	c.UntilResponses(t, within, "an error reported", func(rs []configsync.WatchResponse) bool {
		for _, r := range rs {
			if r.Err != nil {
				got = r.Err
				return true
			}
		}
		return false
	})
	return got
}

// WaitHealthy waits until the last response carries no Err.
func (c *Collector) WaitHealthy(t testing.TB, within time.Duration) {
	t.Helper()
	c.UntilResponses(t, within, "healthy (last response without Err)", func(rs []configsync.WatchResponse) bool {
		return len(rs) == 0 || rs[len(rs)-1].Err == nil
	})
}

// WaitClosed waits for the watch channel to be closed.
func (c *Collector) WaitClosed(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(within):
		t.Fatalf("watch channel not closed within %s after its ctx ended", within)
	}
}

// UntilResponses waits up to within for cond (called with the lock held,
// with every response so far) to hold, failing t with what otherwise.
func (c *Collector) UntilResponses(t testing.TB, within time.Duration, what string, cond func([]configsync.WatchResponse) bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.responses)
		updated := c.updated
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-updated:
		case <-c.closed:
			c.mu.Lock()
			ok := cond(c.responses)
			c.mu.Unlock()
			if !ok {
				t.Fatalf("watch closed before %s; state: %s", what, c.describe())
			}
			return
		case <-deadline.C:
			t.Fatalf("not %s within %s; state: %s", what, within, c.describe())
		}
	}
}

// describe summarises the state and recent responses for failure messages.
func (c *Collector) describe() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "revision %d, apps {", c.state.Revision())
	for i, e := range c.state.Entries() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q@%s", e.App, clip(e.Data), e.Version)
	}
	fmt.Fprintf(&b, "}, %d responses", len(c.responses))
	from := max(0, len(c.responses)-5)
	for i, r := range c.responses[from:] {
		fmt.Fprintf(&b, "\n  #%d reset=%v rev=%d err=%v events=%d", from+i, r.Reset, r.Revision, r.Err, len(r.Events))
	}
	return b.String()
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}
