package engine

import (
	"sync"
	"time"

	"github.com/graylane/graylane/rollout"
)

// Message is one item of an app's event stream: a new status or an event.
type Message struct {
	// Kind is "status" or "event".
	Kind  string     `json:"kind"`
	App   *AppView   `json:"app,omitempty"`
	Event *EventView `json:"event,omitempty"`
}

// EventView is an event with its app and time.
type EventView struct {
	rollout.Event
	App string `json:"app"`
	// Env is the app's environment ("" without environments).
	Env  string    `json:"env,omitempty"`
	Time time.Time `json:"time"`
}

// Broker fans out messages to subscribers of an app ("" subscribes to
// every app). A slow subscriber loses its oldest messages rather than
// blocking the engine; status messages are complete snapshots, so the next
// one repairs any loss.
type Broker struct {
	mu   sync.Mutex
	subs map[string]map[chan Message]struct{}
	// recent keeps the last events per app for late subscribers.
	recent map[string][]Message
}

// NewBroker returns an empty Broker.
func NewBroker() *Broker {
	return &Broker{subs: map[string]map[chan Message]struct{}{}, recent: map[string][]Message{}}
}

// recentEvents is how many events per app a late subscriber is sent (the
// console's timeline); they are kept for the apps this replica drives.
const recentEvents = 20

// Subscribe returns a channel of app's messages (all apps when app is "")
// and a function that ends the subscription.
func (b *Broker) Subscribe(app string) (<-chan Message, func()) {
	ch := make(chan Message, 64)
	b.mu.Lock()
	if b.subs[app] == nil {
		b.subs[app] = map[chan Message]struct{}{}
	}
	b.subs[app][ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs[app], ch)
			b.mu.Unlock()
		})
	}
}

// Recent returns the last events of app, oldest first.
func (b *Broker) Recent(app string) []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.recent[app]...)
}

// Publish sends m to app's subscribers and to those of every app.
func (b *Broker) Publish(app string, m Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.Kind == "event" {
		r := append(b.recent[app], m)
		if len(r) > recentEvents {
			r = r[len(r)-recentEvents:]
		}
		b.recent[app] = r
	}
	for _, key := range []string{app, ""} {
		for ch := range b.subs[key] {
			select {
			case ch <- m:
			default:
				// drop the oldest, then deliver
				select {
				case <-ch:
				default:
				}
				select {
				case ch <- m:
				default:
				}
			}
		}
	}
}

// Forget drops app's recent events (the app was deleted or another
// replica drives it now).
func (b *Broker) Forget(app string) {
	b.mu.Lock()
	delete(b.recent, app)
	b.mu.Unlock()
}
