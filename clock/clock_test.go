package clock

import (
	"testing"
	"time"
)

func TestOrAndFunc(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := Or(Func(func() time.Time { return at })).Now(); !got.Equal(at) {
		t.Fatalf("Or(fake).Now() = %v, want the fake's %v", got, at)
	}
	if _, ok := Or(nil).(Real); !ok {
		t.Fatalf("Or(nil) = %T, want Real", Or(nil))
	}
}
