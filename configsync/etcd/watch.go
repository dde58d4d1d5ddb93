package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
)

// Watch streams changes to the documents after afterRevision; see
// configsync.Source for the contract.
//
//   - afterRevision 0: the prefix is listed at a revision R and sent as a
//     Reset, then watched from R+1, so nothing between the two is missed.
//   - afterRevision N > 0: the documents as of N are read (to know what the
//     consumer holds, for de-duplication) and the watch resumes from N+1.
//     If N has been compacted (or is from the future, as after a restore
//     from an older backup) everything is re-read and sent as a Reset.
//   - A compaction that overtakes a running watch is handled the same way.
//   - Identical content is never delivered twice in a row for an app, also
//     across a Reset, and within one response only an app's last change is
//     sent (configsync.State does the collapsing).
//   - When etcd cannot be reached (the watch breaks, a list fails, or a
//     probe after Config.ProbeInterval of silence fails), one response with Err
//     wrapping configsync.ErrUnavailable is sent; the watch retries from its
//     last revision with back-off, and the next response (with what changed
//     meanwhile, or no events) has Err == nil.
//
// The channel is closed when ctx ends or the Source is closed.
func (s *Source) Watch(ctx context.Context, afterRevision int64) <-chan configsync.WatchResponse {
	out := make(chan configsync.WatchResponse)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	w := &watcher{s: s, out: out, rev: afterRevision, log: s.log.With("watch_from", afterRevision)}
	go func() {
		defer close(out)
		defer cancel()
		defer stop()
		w.run(ctx)
	}()
	return out
}

// errCompacted: the watch's revision has been compacted away.
var errCompacted = errors.New("watch revision compacted")

type watcher struct {
	s     *Source
	out   chan<- configsync.WatchResponse
	log   *slog.Logger
	state *configsync.State // what the consumer holds; nil until known
	rev   int64             // last revision the consumer has seen
	reset bool              // the history was compacted: re-read and send a Reset
	down  bool              // an Err was sent and not yet cleared

	backoff time.Duration
}

func (w *watcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := w.sync(ctx); err != nil {
			if !w.fail(ctx, err) {
				return
			}
			continue
		}
		err := w.stream(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errCompacted):
			w.log.Debug("watch revision compacted, re-reading", "rev", w.rev)
			w.reset = true
		default:
			if !w.fail(ctx, err) {
				return
			}
		}
	}
}

// sync makes sure the consumer's state is known before watching: a Reset
// when starting from scratch or when the resume revision is gone, else the
// documents as of the resume revision.
func (w *watcher) sync(ctx context.Context) error {
	if w.state != nil && !w.reset {
		return nil
	}
	if w.state == nil && w.rev > 0 {
		entries, _, err := w.s.list(ctx, w.rev)
		if err == nil {
			w.state = configsync.NewThinState()
			w.state.Apply(configsync.WatchResponse{Reset: true, Revision: w.rev, Events: puts(entries)})
			return nil
		}
		if errors.Is(err, configsync.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		// Compacted, or a revision from the future: start over.
		w.log.Debug("cannot read at resume revision, re-reading", "rev", w.rev, "err", err)
	}
	entries, rev, err := w.s.list(ctx, 0)
	if err != nil {
		return err
	}
	resp := configsync.WatchResponse{Reset: true, Revision: rev, Events: puts(entries)}
	state := configsync.NewThinState() // for collapsing repeats only: digests, not documents
	state.Apply(resp)
	if !w.send(ctx, resp) {
		return ctx.Err()
	}
	w.state, w.rev, w.reset = state, rev, false
	return nil
}

// stream watches from w.rev+1 until the watch breaks or ctx ends.
func (w *watcher) stream(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// clientv3's Watch blocks until etcd acknowledges the watch, which
	// during an outage can be forever: start it aside so that the probe
	// keeps running meanwhile.
	started := make(chan clientv3.WatchChan, 1)
	from := w.rev + 1
	go func() { started <- w.s.client.Watch(wctx, w.s.prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) }()
	var wch clientv3.WatchChan // nil (never ready) until started
	probe := time.NewTimer(w.s.probeInterval)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wch = <-started:
			started = nil
			continue // not a sign of life: the probe timer keeps running
		case resp, ok := <-wch:
			if !ok {
				return fmt.Errorf("etcd: watch %s from revision %d: watch channel closed: %w", w.s.prefix, w.rev+1, configsync.ErrUnavailable)
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				return errCompacted
			}
			if err := resp.Err(); err != nil {
				return wrap(ctx, fmt.Sprintf("watch %s from revision %d", w.s.prefix, w.rev+1), err)
			}
			w.backoff = 0
			if !w.deliver(ctx, resp) {
				return ctx.Err()
			}
		case <-probe.C:
			pctx, pcancel := context.WithTimeout(ctx, w.s.probeInterval)
			err := w.s.Healthy(pctx)
			pcancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				w.report(ctx, err)
			} else if w.down {
				w.log.Debug("etcd reachable again")
				if !w.send(ctx, configsync.WatchResponse{Revision: w.rev}) {
					return ctx.Err()
				}
			}
		}
		if !probe.Stop() {
			select {
			case <-probe.C:
			default:
			}
		}
		probe.Reset(w.s.probeInterval)
	}
}

// deliver sends what resp changes for the consumer.
func (w *watcher) deliver(ctx context.Context, resp clientv3.WatchResponse) bool {
	var raw []configsync.Event
	for _, ev := range resp.Events {
		app, ok := w.s.appOf(ev.Kv.Key)
		if !ok {
			continue
		}
		if ev.Type == clientv3.EventTypeDelete {
			raw = append(raw, configsync.Event{Type: configsync.Delete, Entry: configsync.Entry{App: app, Revision: ev.Kv.ModRevision}})
		} else {
			raw = append(raw, configsync.Event{Type: configsync.Put, Entry: w.s.entry(app, ev.Kv)})
		}
	}
	rev := w.rev
	if n := len(resp.Events); n > 0 {
		rev = resp.Events[n-1].Kv.ModRevision
	} else if resp.IsProgressNotify() {
		rev = max(rev, resp.Header.Revision)
	}
	evs := w.state.Apply(configsync.WatchResponse{Events: raw, Revision: rev})
	w.rev = rev
	if len(evs) == 0 && !w.down {
		return true
	}
	return w.send(ctx, configsync.WatchResponse{Events: evs, Revision: rev})
}

// send delivers r; it clears the outage flag when r carries no error.
func (w *watcher) send(ctx context.Context, r configsync.WatchResponse) bool {
	select {
	case w.out <- r:
		w.down = r.Err != nil
		return true
	case <-ctx.Done():
		return false
	}
}

// report sends an outage once; further failures while down are only logged.
func (w *watcher) report(ctx context.Context, err error) {
	w.log.Debug("etcd unreachable", "err", err)
	if w.down {
		return
	}
	if !errors.Is(err, configsync.ErrUnavailable) {
		err = fmt.Errorf("%w: %w", configsync.ErrUnavailable, err)
	}
	w.send(ctx, configsync.WatchResponse{Revision: w.rev, Err: err})
}

// fail reports err and waits before the next attempt; false if ctx ended.
func (w *watcher) fail(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	w.report(ctx, err)
	w.backoff = min(max(2*w.backoff, w.s.retryMin), w.s.retryMax)
	t := time.NewTimer(w.backoff)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func puts(entries []configsync.Entry) []configsync.Event {
	evs := make([]configsync.Event, len(entries))
	for i, e := range entries {
		evs[i] = configsync.Event{Type: configsync.Put, Entry: e}
	}
	return evs
}
