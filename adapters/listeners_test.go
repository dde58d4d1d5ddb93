package adapters

import (
	"slices"
	"testing"
)

func TestListenersFireEveryFunctionInOrder(t *testing.T) {
	var l Listeners
	l.Fire("nobody-listens") // the zero value is usable
	var got []string
	l.Add(func(app string) { got = append(got, "a:"+app) })
	l.Add(func(app string) {
		got = append(got, "b:"+app)
		l.Add(func(string) {}) // registering from a listener does not deadlock
	})
	l.Fire("demo")
	if want := []string{"a:demo", "b:demo"}; !slices.Equal(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
}
