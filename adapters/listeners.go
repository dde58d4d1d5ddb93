package adapters

import (
	"slices"
	"sync"
)

// Listeners is the one fan-out behind every Notifier: a backend or router
// keeps a Listeners, implements Notify by calling Add, and calls Fire when
// an app's observed state changed. The zero value is ready to use and it
// is safe for concurrent use.
type Listeners struct {
	mu  sync.Mutex
	fns []func(app string)
}

// Add registers fn (Notifier.Notify).
func (l *Listeners) Add(fn func(app string)) {
	l.mu.Lock()
	l.fns = append(l.fns, fn)
	l.mu.Unlock()
}

// Fire calls every registered function with app, in registration order,
// outside the lock (a function may register another).
func (l *Listeners) Fire(app string) {
	l.mu.Lock()
	fns := slices.Clone(l.fns)
	l.mu.Unlock()
	for _, fn := range fns {
		fn(app)
	}
}
