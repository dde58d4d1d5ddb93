package engine

import (
	"testing"
	"time"
)

// get takes the next app or fails when none comes within a second.
func get(t *testing.T, q *queue) (string, bool) {
	t.Helper()
	type res struct {
		k      string
		urgent bool
	}
	ch := make(chan res, 1)
	go func() {
		k, u, ok := q.Get()
		if ok {
			ch <- res{k, u}
		}
	}()
	select {
	case r := <-ch:
		return r.k, r.urgent
	case <-time.After(5 * time.Second):
		t.Fatal("no app came out of the queue")
		return "", false
	}
}

func TestQueueUrgentFirstButTimersNotStarved(t *testing.T) {
	q := newQueue(time.Now)
	defer q.ShutDown()
	for _, k := range []string{"t1", "t2", "t3"} {
		q.Schedule(k, time.Nanosecond)
	}
	// wait until the timers have fired into the timed lane
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for _, k := range []string{"e1", "e2", "e3", "e4", "e5", "e6"} {
		q.Add(k)
	}
	var order []string
	for i := 0; i < 9; i++ {
		k, _ := get(t, q)
		order = append(order, k)
		q.Done(k)
	}
	// every urgentShare-th Get prefers the timed lane
	want := []string{"e1", "e2", "e3", "t1", "e4", "e5", "e6", "t2", "t3"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
}

func TestQueueOneWorkerPerAppAndRequeueOnDone(t *testing.T) {
	q := newQueue(time.Now)
	defer q.ShutDown()
	q.Schedule("a", time.Nanosecond)
	k, urgent := get(t, q)
	if k != "a" || urgent {
		t.Fatalf("got %s urgent=%v, want a from the timed lane", k, urgent)
	}
	// while a is being processed, an event for it waits for Done
	q.Add("a")
	q.Add("b")
	k, _ = get(t, q)
	if k != "b" {
		t.Fatalf("got %s while a is processed, want b", k)
	}
	q.Done("b")
	q.Done("a")
	k, urgent = get(t, q)
	if k != "a" || !urgent {
		t.Fatalf("after Done: got %s urgent=%v, want a, urgent", k, urgent)
	}
	q.Done("a")
	if n := q.Len(); n != 0 {
		t.Fatalf("%d apps left queued", n)
	}
}

func TestQueueEventPromotesATimedEntry(t *testing.T) {
	q := newQueue(time.Now)
	defer q.ShutDown()
	q.Schedule("slow", time.Nanosecond)
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	q.Add("slow") // now urgent: taken once, as urgent
	k, urgent := get(t, q)
	if k != "slow" || !urgent {
		t.Fatalf("got %s urgent=%v", k, urgent)
	}
	q.Done("slow")
	if n := q.Len(); n != 0 {
		t.Fatalf("the promoted app is still queued (%d)", n)
	}
}

func TestQueueScheduleReplacesTheTimer(t *testing.T) {
	q := newQueue(time.Now)
	defer q.ShutDown()
	q.Schedule("a", time.Hour)
	q.Schedule("a", 10*time.Millisecond) // replaces, not adds
	k, _ := get(t, q)
	if k != "a" {
		t.Fatalf("got %s", k)
	}
	q.Done("a")
	q.mu.Lock()
	it := q.items["a"]
	q.mu.Unlock()
	if it != nil && !it.due.IsZero() {
		t.Fatalf("the replaced one-hour timer is still pending: due %v", it.due)
	}
	q.Schedule("b", 10*time.Millisecond)
	q.Schedule("b", 0) // cancelled
	q.Schedule("c", 20*time.Millisecond)
	k, _ = get(t, q)
	if k != "c" {
		t.Fatalf("got %s, want c (b's timer was cancelled)", k)
	}
}

// Idle doubles the delay per quiet pass up to the ceiling (drawn from
// [3/4, 1] of it);
// Busy and Retry reset it.
func TestQueueIdleBackOff(t *testing.T) {
	q := newQueue(time.Now)
	defer q.ShutDown()
	base, ceiling := 10*time.Second, 5*time.Minute
	var got []time.Duration
	for i := 0; i < 8; i++ {
		got = append(got, q.Idle("a", base, ceiling))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i := range want {
		lo, hi := want[i]-want[i]/4, want[i]
		if got[i] < lo || got[i] > hi {
			t.Fatalf("idle delays %v, want %v, each down to 3/4 of it", got, want)
		}
	}
	if s := q.IdleStreak("a"); s != 5 {
		t.Fatalf("idle streak %d, want 5", s)
	}
	q.Busy("a", base)
	if s := q.IdleStreak("a"); s != 0 {
		t.Fatalf("idle streak after Busy %d", s)
	}
	q.Idle("a", base, ceiling)
	q.Retry("a")
	if s := q.IdleStreak("a"); s != 0 {
		t.Fatalf("idle streak after Retry %d", s)
	}
	if d := q.Retry("a"); d != 100*time.Millisecond {
		t.Fatalf("second retry after %v, want 100ms", d)
	}
	q.Forget("a")
	q.mu.Lock()
	_, kept := q.items["a"]
	q.mu.Unlock()
	if kept {
		t.Fatal("a forgotten app is still held")
	}
}

func TestQueueShutDownWakesGet(t *testing.T) {
	q := newQueue(time.Now)
	done := make(chan bool)
	go func() {
		_, _, ok := q.Get()
		done <- ok
	}()
	q.ShutDown()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("Get returned an app after ShutDown")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get still blocked after ShutDown")
	}
}
