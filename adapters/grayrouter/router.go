package grayrouter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Store is where documents are published, one per app. Every configsync
// Source that is also a Writer fits, opened on the place gray documents
// live (etcd prefix /graylane/gray/, Nacos group GRAYLANE_GRAY, Apollo
// namespace graylane-gray); DocumentsStore adapts a configsync.Documents.
type Store interface {
	// Get returns app's document, or an error wrapping
	// configsync.ErrNotFound.
	Get(ctx context.Context, app string) (configsync.Entry, error)
	// Put writes app's document with compare-and-swap on expect
	// (configsync.Writer's contract).
	Put(ctx context.Context, app string, data []byte, expect string) (configsync.Entry, error)
	// Delete removes app's document.
	Delete(ctx context.Context, app string, expect string) error
}

// Config configures a Router.
type Config struct {
	// Store is where documents are published (required).
	Store Store
	// Centre names the store's centre for logs and the API ("etcd").
	Centre string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Clock stamps PublishedAt (default the real clock).
	Clock clock.Clock
}

// Router is the gray TrafficRouter: SetWeights publishes the app's gray
// document (rules resolved against the split, and the split itself) in
// the config centre, where SDKs and gateways follow it; Weights reads the
// split back from the centre. Backend.Apply calls seen through Track (or
// Desired) keep rules to versions the release still wants, even at weight
// 0, and drop them when the release lets the version go (abort).
type Router struct {
	store  Store
	centre string
	log    *slog.Logger
	clock  clock.Clock

	mu   sync.Mutex
	apps map[string]*appState
}

type appState struct {
	mu      sync.Mutex
	rel     *spec.Release
	split   *traffic.Split   // last split set, nil: unknown (read from the store)
	desired traffic.Replicas // last Apply seen, nil: unknown
	last    *gray.Document   // what the store holds, as last read or written
	version string           // its store version ("" unknown, Absent none)
}

var (
	_ adapters.TrafficRouter = (*Router)(nil)
	_ adapters.Forgetter     = (*Router)(nil)
)

// New returns a Router.
func New(cfg Config) (*Router, error) {
	if cfg.Store == nil {
		return nil, errors.New("grayrouter: Config.Store is required")
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	cfg.Clock = clock.Or(cfg.Clock)
	return &Router{store: cfg.Store, centre: cfg.Centre, log: cfg.Logger, clock: cfg.Clock, apps: map[string]*appState{}}, nil
}

func (r *Router) state(app string) *appState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.apps[app]
	if st == nil {
		st = &appState{}
		r.apps[app] = st
	}
	return st
}

// Weights returns the split of the document in the centre (empty when
// there is none).
func (r *Router) Weights(ctx context.Context, app string) (traffic.Split, error) {
	if err := ctx.Err(); err != nil {
		return traffic.Split{}, err
	}
	d, _, err := r.read(ctx, app)
	if err != nil {
		return traffic.Split{}, err
	}
	if d == nil {
		return traffic.Split{}, nil
	}
	return d.SplitOf(), nil
}

// Document returns the document in the centre for app, or an error
// wrapping configsync.ErrNotFound.
func (r *Router) Document(ctx context.Context, app string) (*gray.Document, error) {
	d, _, err := r.read(ctx, app)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("gray document of %s in %s: %w", app, r.centre, configsync.ErrNotFound)
	}
	return d, nil
}

// read returns the stored document (nil if none) and its store version
// (configsync.Absent if none).
func (r *Router) read(ctx context.Context, app string) (*gray.Document, string, error) {
	e, err := r.store.Get(ctx, app)
	if errors.Is(err, configsync.ErrNotFound) {
		return nil, configsync.Absent, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read gray document of %s from %s: %w", app, r.centre, err)
	}
	d, err := gray.Parse(e.Data)
	if err != nil {
		return nil, e.Version, fmt.Errorf("gray document of %s in %s: %w", app, r.centre, err)
	}
	return d, e.Version, nil
}

// SetWeights publishes rel's rules resolved against s, and s. It returns
// once the centre holds the document (read back).
func (r *Router) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := traffic.ValidateSplit(s); err != nil {
		return fmt.Errorf("gray router: split for %s: %w", rel.App, err)
	}
	st := r.state(rel.App)
	st.mu.Lock()
	defer st.mu.Unlock()
	prevRel, prevSplit := st.rel, st.split
	st.rel = rel
	cp := traffic.Split{Weights: append([]traffic.VersionWeight(nil), s.Weights...), Preview: s.Preview}
	st.split = &cp
	if err := r.publish(ctx, st); err != nil {
		st.rel, st.split = prevRel, prevSplit
		return err
	}
	return nil
}

// Desired records the instance counts the engine asked the backend for
// and republishes when that changes which rules apply (a rule to a
// version wanted at zero is dropped). Before the first SetWeights of this
// process it works from the split in the centre; with no document there,
// it publishes nothing.
func (r *Router) Desired(ctx context.Context, rel *spec.Release, want traffic.Replicas) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st := r.state(rel.App)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rel = rel
	st.desired = maps.Clone(want)
	if st.desired == nil {
		st.desired = traffic.Replicas{}
	}
	if st.split == nil {
		d, v, err := r.read(ctx, rel.App)
		if err != nil {
			return err
		}
		st.last, st.version = d, v
		if d == nil {
			return nil
		}
		s := d.SplitOf()
		st.split = &s
	}
	return r.publish(ctx, st)
}

// publish writes the document for st unless the centre already routes the
// same way (st.mu held).
func (r *Router) publish(ctx context.Context, st *appState) error {
	app := st.rel.App
	doc := gray.Build(gray.BuildInput{Release: st.rel, Split: *st.split, Desired: st.desired})
	for attempt := 0; ; attempt++ {
		if st.version == "" {
			d, v, err := r.read(ctx, app)
			if err != nil && v == "" {
				return err
			}
			st.last, st.version = d, v // a malformed document is overwritten
		}
		if st.last != nil && st.last.SameRouting(&doc) {
			return nil
		}
		doc.Generation = 1
		if st.last != nil {
			doc.Generation = st.last.Generation + 1
		}
		doc.PublishedAt = r.clock.Now().UTC().Format(time.RFC3339Nano)
		data, err := doc.Marshal()
		if err != nil {
			return err
		}
		e, err := r.store.Put(ctx, app, data, st.version)
		if errors.Is(err, configsync.ErrConflict) && attempt < 3 {
			st.version = "" // someone else wrote: read again and retry
			continue
		}
		if err != nil {
			st.version = ""
			return fmt.Errorf("publish gray document of %s (generation %d) to %s: %w", app, doc.Generation, r.centre, err)
		}
		pub := doc
		st.last, st.version = &pub, e.Version
		r.log.Info("gray document published", "app", app, "generation", doc.Generation, "split", doc.Split, "rules", len(doc.Rules), "centre", r.centre)
		return r.verify(ctx, app, &pub)
	}
}

// verify reads the document back: SetWeights returns only once the centre
// serves it.
func (r *Router) verify(ctx context.Context, app string, want *gray.Document) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, _, err := r.read(ctx, app)
		if err == nil && d != nil && d.Generation >= want.Generation {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("gray document of %s generation %d not readable from %s after writing it (last read: %v): %w", app, want.Generation, r.centre, err, configsync.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Forget deletes app's document (the app was deleted).
func (r *Router) Forget(ctx context.Context, app string) error {
	if err := r.store.Delete(ctx, app, ""); err != nil {
		return fmt.Errorf("delete gray document of %s from %s: %w", app, r.centre, err)
	}
	r.mu.Lock()
	delete(r.apps, app)
	r.mu.Unlock()
	return nil
}

// Track returns b with every Apply also reported to Desired, so the
// router knows which versions the release still wants. Wire it around the
// backend of apps with traffic.type gray.
func (r *Router) Track(b adapters.Backend) adapters.Backend { return &tracked{Backend: b, r: r} }

type tracked struct {
	adapters.Backend
	r *Router
}

var (
	_ adapters.Backend   = (*tracked)(nil)
	_ adapters.Forgetter = (*tracked)(nil)
)

func (t *tracked) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step adapters.Step) error {
	if err := t.Backend.Apply(ctx, rel, want, step); err != nil {
		return err
	}
	return t.r.Desired(ctx, rel, want)
}

func (t *tracked) Forget(ctx context.Context, app string) error {
	if f, ok := t.Backend.(adapters.Forgetter); ok {
		return f.Forget(ctx, app)
	}
	return nil
}

// Unwrap returns the tracked backend.
func (t *tracked) Unwrap() adapters.Backend { return t.Backend }
