package promotion

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/enginetest"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// countingEngine counts what the controller reads of an engine. A read is
// prompted when the engine's last Changes answer named the app or a full
// listing (AppNames) followed that answer; the controller's rounds run one
// after another, so a read is judged by the round it belongs to even when
// the test resets the counts in the middle of one.
type countingEngine struct {
	*engine.Engine
	mu         sync.Mutex
	all        int            // AppNames calls
	read       map[string]int // App calls per app
	unprompted map[string]int // App calls the round had no reason for
	named      map[string]bool
	full       bool
}

func newCountingEngine(e *engine.Engine) *countingEngine {
	return &countingEngine{Engine: e, read: map[string]int{}, unprompted: map[string]int{}, named: map[string]bool{}}
}

func (c *countingEngine) Changes(seq uint64) engine.Changes {
	ch := c.Engine.Changes(seq)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.named, c.full = map[string]bool{}, false
	for _, s := range ch.Changed {
		c.named[s.App] = true
	}
	return ch
}

func (c *countingEngine) AppNames(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	c.all++
	c.full = true
	c.mu.Unlock()
	return c.Engine.AppNames(ctx)
}

func (c *countingEngine) App(ctx context.Context, app string) (engine.AppView, error) {
	c.mu.Lock()
	c.read[app]++
	if !c.full && !c.named[app] {
		c.unprompted[app]++
	}
	c.mu.Unlock()
	return c.Engine.App(ctx, app)
}

func (c *countingEngine) reset() (all int, read, unprompted map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, read, unprompted = c.all, c.read, c.unprompted
	c.all, c.read, c.unprompted = 0, map[string]int{}, map[string]int{}
	return all, read, unprompted
}

// Between full observations the controller reads only the apps whose
// state changed: at 20,000 apps, reading every one on every change (or
// every 2 s) cost a core and 20,000 etcd reads per round.
func TestRoundsObserveOnlyChangedApps(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli := etcdtest.Start(t).Client()
	set, err := environments.Parse([]any{map[string]any{"name": "default"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src := memory.New()
	be := enginetest.NewSignalling(1000)
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: be, Env: "default", Logger: log, Resync: 100 * time.Millisecond})
	be.Notify(eng.Trigger)
	go eng.Run(ctx)
	counted := newCountingEngine(eng)
	store := NewStore(cli, "")
	c, err := New(Config{Set: set, Store: store, Logger: log, Resync: 50 * time.Millisecond,
		Envs: map[string]*Env{"default": {Config: &set.Envs[0], Engine: counted, Source: src, Writer: src, Bundle: bundleOf}}})
	if err != nil {
		t.Fatal(err)
	}
	apps := []string{"a1", "a2", "a3", "a4", "a5"}
	for _, app := range apps {
		src.Set(app, []byte(doc(app, "v1", "hi", 1, "")))
	}
	go c.Run(ctx)
	go c.Lead(ctx)
	current := func(app, version string) func() error {
		return func() error {
			st, _, err := store.State(ctx, "default", app)
			if err != nil {
				return err
			}
			if st == nil || st.Current == nil {
				return fmt.Errorf("%s: no bundle running Healthy yet", app)
			}
			return testenv.Check(st.Current.Version == version, "%s runs %s", app, st.Current.Version)
		}
	}
	for _, app := range apps {
		testenv.Eventually(t, 20*time.Second, app+" v1 observed", current(app, "v1"))
	}
	if all, _, _ := counted.reset(); all == 0 {
		t.Fatal("the first round did not list every app")
	}

	src.Set("a3", []byte(doc("a3", "v2", "hi", 1, "")))
	testenv.Eventually(t, 20*time.Second, "a3 v2 observed", current("a3", "v2"))
	all, read, unprompted := counted.reset()
	if all != 0 {
		t.Errorf("a change to one app listed every app %d times; want only the changed app read", all)
	}
	if read["a3"] == 0 {
		t.Errorf("a3 changed but was not read: %v", read)
	}
	// Another app may still settle after its v1 (a last pass writing its
	// record): the engine reports that as a change, and reading it is
	// right. Reading an app the engine did not report is not.
	if len(unprompted) > 0 {
		t.Errorf("apps read without a change reported or a full listing: %v (all reads: %v)", unprompted, read)
	}

	// Kick (an unfreeze, a request) still looks at every app.
	c.Kick()
	testenv.Eventually(t, 10*time.Second, "a full round after Kick", func() error {
		counted.mu.Lock()
		defer counted.mu.Unlock()
		return testenv.Check(counted.all > 0, "AppNames called %d times", counted.all)
	})
}
