package configrelease

// The write path: write-ahead record, execution phase by phase with
// back-off, read-back, and recovery of an interrupted write.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/rollout"
)

// recoverTxn handles a write-ahead record this process did not start:
// graylane died in the middle of a write. Everything it may have touched
// is unknown until read back; the pass then finishes it or, when the
// release moved on, undoes it by writing the layout now wanted.
func (m *Manager) recoverTxn(state *State, lay Layout, a *appMem, log *slog.Logger) []rollout.Event {
	if state.Txn == nil || a.txnSeen == state.Txn.ID {
		return nil
	}
	a.txnSeen = state.Txn.ID
	for _, o := range state.Txn.Ops {
		ap := state.Applied[o.Key]
		ap.Placement, ap.Verified = o.Placement, false
		state.Applied[o.Key] = ap
	}
	what := "finishing it"
	if state.Txn.To != lay {
		what = "the release moved on to " + lay.String() + ": undoing it"
	}
	log.Warn("recovering an interrupted config write", "txn", state.Txn.ID, "from", state.Txn.From.String(), "to", state.Txn.To.String(), "now", lay.String())
	return []rollout.Event{{Type: rollout.Warning, Reason: "ConfigRecovery",
		Message: fmt.Sprintf("found an interrupted config write %s (%s -> %s, started %s): %s", state.Txn.ID, state.Txn.From, state.Txn.To, state.Txn.StartedAt.Format(time.RFC3339), what)}}
}

// write makes the centres hold want: write-ahead record, execution phase
// by phase with back-off, and, once nothing is pending, the layout is
// recorded as in place (with its history events). It saves the state when
// it changed.
func (m *Manager) write(ctx context.Context, in Pass, state *State, want map[string]wanted, lay Layout, bundles map[string]*Bundle, a *appMem, log *slog.Logger, res *Result) error {
	ops := pending(want, state.Applied)
	switch {
	case len(ops) > 0:
		if err := m.writeAhead(ctx, in.App, state, ops, lay, a); err != nil {
			return err
		}
		res.Events = append(res.Events, m.execute(ctx, state, ops, a, log)...)
		if len(pending(want, state.Applied)) == 0 {
			state.Txn = nil
			res.Events = append(res.Events, m.settled(ctx, in.App, state.Layout, lay, bundles)...)
			state.Layout = lay
		} else {
			res.RequeueAfter = m.retryAfter(a, m.cfg.Clock.Now())
		}
	case state.Txn != nil || state.Layout != lay:
		if state.Layout != lay {
			res.Events = append(res.Events, m.settled(ctx, in.App, state.Layout, lay, bundles)...)
		}
		state.Txn, state.Layout = nil, lay
	default:
		return nil
	}
	if err := m.cfg.Store.SaveState(ctx, in.App, *state); err != nil {
		return fmt.Errorf("config of %s: %w", in.App, err)
	}
	return nil
}

// writeAhead records the intent before any centre is touched: the
// placements to write become unknown (unverified) and the Txn lists them.
func (m *Manager) writeAhead(ctx context.Context, app string, state *State, ops []op, lay Layout, a *appMem) error {
	txn := state.Txn
	if txn == nil || txn.To != lay {
		txn = &Txn{ID: randid.Hex(6), StartedAt: m.cfg.Clock.Now(), From: state.Layout, To: lay}
	}
	known := map[string]bool{}
	for _, o := range txn.Ops {
		known[o.Key] = true
	}
	changed := txn != state.Txn
	for _, o := range ops {
		if !known[o.key] {
			txn.Ops = append(txn.Ops, TxnOp{Key: o.key, Placement: o.w.p, SHA256: o.w.sha()})
			changed = true
		}
		ap := state.Applied[o.key]
		if ap.Verified {
			ap.Verified = false
			changed = true
		}
		ap.Placement = o.w.p
		state.Applied[o.key] = ap
	}
	if !changed {
		return nil
	}
	state.Txn = txn
	a.txnSeen = txn.ID
	if err := m.cfg.Store.SaveState(ctx, app, *state); err != nil {
		return fmt.Errorf("config of %s: record the write before making it: %w", app, err)
	}
	return nil
}

// execute runs the ops phase by phase; it stops at the first phase that
// does not fully succeed (the failures are retried with back-off on later
// passes). It returns the events worth telling.
func (m *Manager) execute(ctx context.Context, state *State, ops []op, a *appMem, log *slog.Logger) []rollout.Event {
	var events []rollout.Event
	now := m.cfg.Clock.Now()
	for phase := 1; phase <= 3; phase++ {
		var batch []op
		for _, o := range ops {
			if o.phase == phase {
				batch = append(batch, o)
			}
		}
		if len(batch) == 0 {
			continue
		}
		type result struct {
			o   op
			sha string
			err error
		}
		results := make([]result, len(batch))
		var wg sync.WaitGroup
		for i, o := range batch {
			if r := a.retry[o.key]; r != nil && now.Before(r.next) {
				results[i] = result{o: o, err: errBackingOff}
				continue
			}
			wg.Add(1)
			go func(i int, o op) {
				defer wg.Done()
				octx, cancel := context.WithTimeout(ctx, m.cfg.OpTimeout)
				defer cancel()
				sha, err := m.applyOne(octx, o.w)
				results[i] = result{o: o, sha: sha, err: err}
			}(i, o)
		}
		wg.Wait()
		failed := false
		for _, r := range results {
			if r.err != nil {
				failed = true
				if errors.Is(r.err, errBackingOff) {
					continue
				}
				rs := a.retry[r.o.key]
				if rs == nil {
					rs = &retryState{}
					a.retry[r.o.key] = rs
				}
				rs.attempts++
				rs.err = r.err.Error()
				rs.next = m.cfg.Clock.Now().Add(backoff(rs.attempts))
				log.Warn("config write failed; retrying with back-off", "placement", r.o.w.p.String(), "file", r.o.w.p.File, "attempt", rs.attempts, "retryIn", backoff(rs.attempts), "err", r.err)
				if rs.attempts == 1 || rs.attempts%10 == 0 {
					events = append(events, rollout.Event{Type: rollout.Warning, Reason: "ConfigWriteFailed",
						Message: fmt.Sprintf("%s of %s at %s: %v (attempt %d, retrying)", verb(r.o.w), r.o.w.p.File, r.o.w.p, r.err, rs.attempts)})
				}
				continue
			}
			delete(a.retry, r.o.key)
			if r.o.w.file == nil {
				delete(state.Applied, r.o.key)
			} else {
				state.Applied[r.o.key] = AppliedPlacement{Placement: r.o.w.p, Identity: r.o.w.identity, SHA256: r.sha, Verified: true, At: m.cfg.Clock.Now()}
			}
			delete(a.drift, r.o.key)
			if state.Txn != nil {
				for i := range state.Txn.Ops {
					if state.Txn.Ops[i].Key == r.o.key {
						state.Txn.Ops[i].Done = true
					}
				}
			}
			log.Info("config placed and read back", "placement", r.o.w.p.String(), "file", r.o.w.p.File, "identity", r.o.w.identity, "action", verb(r.o.w))
		}
		if failed {
			return events
		}
	}
	return events
}

var errBackingOff = errors.New("backing off")

func verb(w wanted) string {
	if w.file == nil {
		return "delete"
	}
	return "write"
}

func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (m *Manager) retryAfter(a *appMem, now time.Time) time.Duration {
	next := 500 * time.Millisecond
	for _, r := range a.retry {
		if d := r.next.Sub(now); d > 0 && d < next {
			next = d
		}
	}
	return next
}

// applyOne makes one placement hold w.file (or nothing) and reads it back.
// It returns the file digest read back.
func (m *Manager) applyOne(ctx context.Context, w wanted) (string, error) {
	docs, ok := m.centres[w.p.Centre]
	if !ok {
		return "", fmt.Errorf("no %s centre is configured in graylane (see docs/config.md)", w.p.Centre)
	}
	cur, rerr := m.read(ctx, docs, w.p)
	if sha, ok := m.matches(w, cur, rerr); ok {
		return sha, nil
	}
	if rerr != nil && !isNotFound(rerr) {
		return "", fmt.Errorf("read before %s: %w", verb(w), rerr)
	}
	var err error
	switch gd, gray := docs.(GrayDocuments); {
	case w.p.Label != "" && !gray:
		return "", fmt.Errorf("%s has no label-selected copies", w.p.Centre)
	case w.p.Label != "" && w.file == nil:
		err = gd.DeleteGray(ctx, w.p.Loc, w.p.Label)
	case w.p.Label != "":
		err = gd.WriteGray(ctx, w.p.Loc, w.p.Label, []byte(w.file.Content))
	case w.file == nil:
		err = docs.Delete(ctx, w.p.Loc, cur.Version)
	default:
		expect := cur.Version
		if rerr != nil {
			expect = configsync.Absent
		}
		_, err = docs.Write(ctx, w.p.Loc, []byte(w.file.Content), expect)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", verb(w), err)
	}
	// read back until the centre serves it, for at most ReadBackTimeout
	rctx, cancel := context.WithTimeout(ctx, m.cfg.ReadBackTimeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		cur, rerr = m.read(ctx, docs, w.p)
		if sha, ok := m.matches(w, cur, rerr); ok {
			return sha, nil
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			got := "an error: " + fmt.Sprint(rerr)
			if rerr == nil {
				d, _ := configwire.FileDigest(w.p.Format, cur.Data)
				got = "digest " + configwire.Short(d)
			}
			return "", fmt.Errorf("%s done, but reading it back after %s still shows %s", verb(w), m.cfg.ReadBackTimeout, got)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("read back: %w", ctx.Err())
		case <-rctx.Done():
		case <-t.C:
		}
	}
}

// read reads a placement as the centre's clients see it.
func (m *Manager) read(ctx context.Context, docs configsync.Documents, p Placement) (configsync.Doc, error) {
	if p.Label != "" {
		gd, ok := docs.(GrayDocuments)
		if !ok {
			return configsync.Doc{}, fmt.Errorf("%s has no label-selected copies", p.Centre)
		}
		return gd.ReadGray(ctx, p.Loc, p.Label)
	}
	if rb, ok := docs.(configsync.ReadBacker); ok {
		return rb.ReadBack(ctx, p.Loc)
	}
	return docs.Read(ctx, p.Loc)
}

// matches reports whether what was read is what w wants, and its digest.
func (m *Manager) matches(w wanted, doc configsync.Doc, err error) (string, bool) {
	if w.file == nil {
		return "", isNotFound(err)
	}
	if err != nil {
		return "", false
	}
	sha, derr := configwire.FileDigest(w.p.Format, doc.Data)
	return sha, derr == nil && sha == w.file.SHA256
}
