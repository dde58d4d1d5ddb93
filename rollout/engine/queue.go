package engine

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"
)

// queue is the engine's keyed work queue (practice 5: one worker per app at
// a time), with what graylane needs beyond a plain FIFO:
//
//   - two lanes: events (a new document, a command, a backend's
//     notification, the observe callback) go to the urgent lane, served
//     before timed passes, so an edit is acted on at once even while
//     thousands of rollouts poll; one Get in urgentShare takes from the
//     timed lane when both hold apps, so timers are never starved;
//   - one timer per app: Schedule replaces the app's pending timer instead
//     of adding another, so an event pass followed by a reschedule leaves
//     no stray pass behind;
//   - per-app idle back-off (Idle) and failure back-off (Retry).
//
// An app added while a worker holds it is queued again when Done is
// called (urgent if any of those adds was).
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	items    map[string]*item
	urgent   fifo
	normal   fifo
	timers   timerHeap
	wake     chan struct{} // tells the timer loop the earliest timer moved
	shutdown bool
	gets     uint64
	// retry back-off: base doubling per consecutive failure, up to max.
	retryBase, retryMax time.Duration
	now                 func() time.Time
}

// item is one app's place in the queue.
type item struct {
	queued     bool // in a lane (or waiting for Done, when processing)
	urgent     bool // the queued entry is urgent
	processing bool
	gen        uint64    // bumped when the app enters a lane: older lane entries are stale
	due        time.Time // pending timer (zero: none)
	failures   int
	idle       int // consecutive quiet passes
}

// urgentShare: when both lanes hold apps, every urgentShare-th Get takes
// from the timed lane.
const urgentShare = 4

func newQueue(now func() time.Time) *queue {
	q := &queue{items: map[string]*item{}, wake: make(chan struct{}, 1),
		retryBase: 50 * time.Millisecond, retryMax: 10 * time.Second, now: now}
	q.cond = sync.NewCond(&q.mu)
	go q.timerLoop()
	return q
}

func (q *queue) item(key string) *item {
	it := q.items[key]
	if it == nil {
		it = &item{}
		q.items[key] = it
	}
	return it
}

// Add queues key in the urgent lane (an event).
func (q *queue) Add(key string) { q.add(key, true) }

func (q *queue) add(key string, urgent bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	it := q.item(key)
	if it.queued && (it.urgent || !urgent) {
		return
	}
	it.urgent = it.urgent || urgent
	if it.queued && it.processing {
		return // queued again by Done, urgently
	}
	it.queued = true
	if it.processing {
		return
	}
	q.push(key, it)
}

// push puts key into its lane. Callers hold q.mu.
func (q *queue) push(key string, it *item) {
	it.gen++
	if it.urgent {
		q.urgent.push(key, it.gen)
	} else {
		q.normal.push(key, it.gen)
	}
	q.cond.Signal()
}

// Get blocks until an app is ready and returns it, whether it came through
// the urgent lane, and false once the queue is shut down.
func (q *queue) Get() (key string, urgent bool, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.shutdown {
			return "", false, false
		}
		q.gets++
		preferNormal := q.gets%urgentShare == 0
		lanes := []*fifo{&q.urgent, &q.normal}
		if preferNormal {
			lanes[0], lanes[1] = lanes[1], lanes[0]
		}
		for _, l := range lanes {
			for l.len() > 0 {
				k, gen := l.pop()
				it := q.items[k]
				if it == nil || !it.queued || it.processing || it.gen != gen {
					continue // stale entry
				}
				urgent := it.urgent
				it.queued, it.urgent, it.processing = false, false, true
				return k, urgent, true
			}
		}
		q.gets--
		q.cond.Wait()
	}
}

// Done releases key after a pass; an add that came meanwhile queues it
// again.
func (q *queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := q.items[key]
	if it == nil {
		return
	}
	it.processing = false
	if it.queued && !q.shutdown {
		q.push(key, it)
		return
	}
	q.gc(key, it)
}

// gc forgets an app that has nothing pending. Callers hold q.mu.
func (q *queue) gc(key string, it *item) {
	if !it.queued && !it.processing && it.due.IsZero() && it.failures == 0 && it.idle == 0 {
		delete(q.items, key)
	}
}

// Schedule sets key's one timer to fire after d (replacing a pending
// one), queueing it in the timed lane then. d <= 0 cancels the timer.
func (q *queue) Schedule(key string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	it := q.item(key)
	if d <= 0 {
		it.due = time.Time{}
		q.gc(key, it)
		return
	}
	it.due = q.now().Add(d)
	earliest := q.timers.len() == 0 || it.due.Before(q.timers.items[0].due)
	heap.Push(&q.timers, timer{key: key, due: it.due})
	if q.timers.len() > 4*len(q.items)+1024 {
		q.compact()
	}
	if earliest {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// Busy records a pass that did something (or is waiting on something): it
// resets key's idle back-off and failure count and schedules the next
// pass after d.
func (q *queue) Busy(key string, d time.Duration) {
	q.mu.Lock()
	if it := q.items[key]; it != nil {
		it.idle, it.failures = 0, 0
	}
	q.mu.Unlock()
	q.Schedule(key, d)
}

// Idle records a quiet pass (nothing changed, nothing to wait for) and
// schedules the next one with back-off: base, then doubling per quiet
// pass up to ceiling, each drawn from [3/4, 1] of that so that apps that
// converged together spread out instead of coming back in waves (the
// ceiling stays a bound). It returns the delay chosen.
func (q *queue) Idle(key string, base, ceiling time.Duration) time.Duration {
	q.mu.Lock()
	it := q.item(key)
	it.failures = 0
	d := base << min(it.idle, 20)
	if d > ceiling || d <= 0 {
		d = ceiling
	} else {
		it.idle++
	}
	q.mu.Unlock()
	d = jitter(d)
	q.Schedule(key, d)
	return d
}

// Forget drops key's timer and back-off (an app that needs no more
// passes: deleted, unknown, or driven by another replica).
func (q *queue) Forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it := q.items[key]; it != nil {
		it.due, it.idle, it.failures = time.Time{}, 0, 0
		q.gc(key, it)
	}
}

// Retry schedules key after a failed pass, with exponential back-off.
func (q *queue) Retry(key string) time.Duration {
	q.mu.Lock()
	it := q.item(key)
	it.idle = 0
	d := q.retryBase << min(it.failures, 20)
	if d > q.retryMax || d <= 0 {
		d = q.retryMax
	}
	it.failures++
	q.mu.Unlock()
	q.Schedule(key, d)
	return d
}

// IdleStreak returns how many quiet passes in a row key has had.
func (q *queue) IdleStreak(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it := q.items[key]; it != nil {
		return it.idle
	}
	return 0
}

func jitter(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d
	}
	return d - d/4 + rand.N(d/4+1)
}

// Len is the number of apps waiting in the lanes.
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, it := range q.items {
		if it.queued && !it.processing {
			n++
		}
	}
	return n
}

// ShutDown wakes every Get (they return ok false) and stops the timers.
func (q *queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	q.shutdown = true
	q.cond.Broadcast()
	close(q.wake)
}

// timerLoop moves apps whose timer fired into the timed lane.
func (q *queue) timerLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		q.mu.Lock()
		if q.shutdown {
			q.mu.Unlock()
			return
		}
		now := q.now()
		for q.timers.len() > 0 && !q.timers.items[0].due.After(now) {
			tm := heap.Pop(&q.timers).(timer)
			it := q.items[tm.key]
			if it == nil || !it.due.Equal(tm.due) {
				continue // replaced or cancelled
			}
			it.due = time.Time{}
			if !it.queued {
				it.queued = true
				if !it.processing {
					q.push(tm.key, it)
				}
			}
		}
		wait := time.Hour
		if q.timers.len() > 0 {
			wait = q.timers.items[0].due.Sub(now)
		}
		q.mu.Unlock()
		t.Reset(wait)
		select {
		case _, ok := <-q.wake:
			if !ok {
				return
			}
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-t.C:
		}
	}
}

// compact drops replaced timers from the heap. Callers hold q.mu.
func (q *queue) compact() {
	live := q.timers.items[:0]
	for _, tm := range q.timers.items {
		if it := q.items[tm.key]; it != nil && it.due.Equal(tm.due) {
			live = append(live, tm)
		}
	}
	q.timers.items = live
	heap.Init(&q.timers)
}

// fifo is a queue of keys with the generation they were pushed at.
type fifo struct {
	keys []string
	gens []uint64
	head int
}

func (f *fifo) push(k string, gen uint64) {
	if f.head > 0 && f.head >= len(f.keys)/2 {
		n := copy(f.keys, f.keys[f.head:])
		copy(f.gens, f.gens[f.head:])
		clear(f.keys[n:])
		f.keys, f.gens, f.head = f.keys[:n], f.gens[:n], 0
	}
	f.keys = append(f.keys, k)
	f.gens = append(f.gens, gen)
}

func (f *fifo) pop() (string, uint64) {
	k, g := f.keys[f.head], f.gens[f.head]
	f.keys[f.head] = ""
	f.head++
	return k, g
}

func (f *fifo) len() int { return len(f.keys) - f.head }

type timer struct {
	key string
	due time.Time
}

type timerHeap struct{ items []timer }

func (h timerHeap) Len() int           { return len(h.items) }
func (h timerHeap) Less(i, j int) bool { return h.items[i].due.Before(h.items[j].due) }
func (h timerHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *timerHeap) Push(x any)        { h.items = append(h.items, x.(timer)) }
func (h *timerHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
func (h timerHeap) len() int { return len(h.items) }
