package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RecordWatcher is an optional capability of a Store: list every record,
// then follow changes. With it the apps list is kept from the store on
// every replica (a standby lists what the leader saved) instead of loading
// every record per request.
type RecordWatcher interface {
	// ListRecords calls fn for every record (in any order, in pages as
	// the store likes) and returns the store revision the listing
	// reflects, to watch from. The records it and WatchRecords deliver
	// are for list rows: their revision log may be left out
	// (DecodeRecordHead).
	ListRecords(ctx context.Context, fn func(app string, rec Record, rev int64)) (int64, error)
	// WatchRecords sends every change after rev until ctx ends or the
	// watch fails; then the channel closes, the last item carrying Err
	// when it failed (the caller lists again).
	WatchRecords(ctx context.Context, rev int64) <-chan RecordChange
}

// RecordChange is one change of WatchRecords.
type RecordChange struct {
	App     string
	Record  Record
	Rev     int64
	Deleted bool
	Err     error
}

// List answers one page of the apps list from the engine's index. It
// waits (until ctx ends) for the first full listing after start.
func (e *Engine) List(ctx context.Context, q Query) (Page, error) {
	if q.Limit <= 0 {
		return Page{}, errors.New("list apps: limit must be positive")
	}
	select {
	case <-e.index.ready:
	case <-ctx.Done():
		return Page{}, fmt.Errorf("list apps: the apps index is still loading: %w", ctx.Err())
	}
	return e.index.page(q, e.SourceError() == nil), nil
}

// Changes returns the apps list's changes after seq (see Page.Seq), and a
// function that subscribes to further changes: its channel receives after
// every change (coalesced; it never blocks the engine).
func (e *Engine) Changes(seq uint64) Changes {
	return e.index.since(seq, e.SourceError() == nil)
}

// SubscribeChanges returns a channel signalled after changes to the apps
// list (coalesced), and a function to stop.
func (e *Engine) SubscribeChanges() (<-chan struct{}, func()) { return e.index.subscribe() }

// feedIndex fills the apps index from the store and keeps it current
// until ctx ends (every replica runs it; passes on the leader add what
// they observe).
func (e *Engine) feedIndex(ctx context.Context) {
	rw, ok := e.cfg.Store.(RecordWatcher)
	if !ok {
		e.fillIndex(ctx)
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		rev, err := rw.ListRecords(ctx, func(app string, rec Record, rev int64) {
			if s, ok := e.summaryOfRecord(app, rec, rev); ok {
				e.index.put(s, rev, false)
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("list state records for the apps index", "err", err)
				sleepCtx(ctx, backoff)
				backoff = min(backoff*2, 10*time.Second)
			}
			continue
		}
		e.indexDocs(ctx)
		e.index.markReady()
		backoff = 100 * time.Millisecond
		for ch := range rw.WatchRecords(ctx, rev) {
			if ch.Err != nil {
				if ctx.Err() == nil {
					e.log.Warn("watch state records for the apps index; listing again", "err", ch.Err)
				}
				break
			}
			if ch.Deleted {
				e.index.remove(ch.App)
				continue
			}
			if s, ok := e.summaryOfRecord(ch.App, ch.Record, ch.Rev); ok {
				e.index.put(s, ch.Rev, false)
			}
			if len(ch.Record.Commands) > 0 {
				// a command queued through another replica's API: the
				// replica driving the app acts on it at once
				e.Trigger(ch.App)
			}
		}
	}
}

// fillIndex fills the index once from a Store without RecordWatcher (a
// single graylane: its passes keep the index current).
func (e *Engine) fillIndex(ctx context.Context) {
	for ctx.Err() == nil {
		apps, err := e.cfg.Store.Apps(ctx)
		if err == nil {
			for _, a := range apps {
				rec, rev, lerr := e.cfg.Store.Load(ctx, a)
				if lerr != nil {
					err = lerr
					break
				}
				if s, ok := e.summaryOfRecord(a, rec, rev); ok {
					e.index.put(s, rev, false)
				}
			}
		}
		if err == nil {
			e.indexDocs(ctx)
			e.index.markReady()
			return
		}
		e.log.Warn("fill the apps index", "err", err)
		sleepCtx(ctx, time.Second)
	}
}

// indexDocs adds placeholder rows for apps that have a document but no
// record yet, once the source's first listing is in.
func (e *Engine) indexDocs(ctx context.Context) {
	select {
	case <-e.synced:
	case <-ctx.Done():
		return
	}
	e.mu.Lock()
	entries := e.docs.Entries()
	e.mu.Unlock()
	for _, en := range entries {
		e.index.doc(en.App, e.cfg.Source.Name(), true)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
