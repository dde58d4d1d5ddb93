package memory_test

import (
	"context"
	"fmt"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/memory"
)

func ExampleSource() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := memory.New()
	defer src.Close()
	src.Set("api", []byte("version: v1"))

	watch := src.Watch(ctx, 0)
	first := <-watch
	fmt.Println("reset:", first.Reset, "apps:", len(first.Events))

	var state configsync.State
	state.Apply(first)
	// until prints the changes the watch delivers until app holds data.
	until := func(app, data string) {
		for e, _ := state.Get(app); string(e.Data) != data; e, _ = state.Get(app) {
			for _, ev := range state.Apply(<-watch) {
				fmt.Printf("%s %s %s\n", ev.Type, ev.Entry.App, ev.Entry.Data)
			}
		}
	}

	// A compare-and-swap write against the version just read.
	e, _ := src.Get(ctx, "api")
	if _, err := src.Put(ctx, "api", []byte("version: v2"), e.Version); err != nil {
		fmt.Println(err)
	}
	until("api", "version: v2")
	// The same content again is not delivered; the next change is.
	src.Set("api", []byte("version: v2"))
	src.Set("api", []byte("version: v3"))
	until("api", "version: v3")
	_, err := src.Put(ctx, "api", []byte("version: v4"), e.Version)
	fmt.Println(err)
	// Output:
	// reset: true apps: 1
	// PUT api version: v2
	// PUT api version: v3
	// memory: put app "api": expected version 1, document is at 4: version conflict
}
