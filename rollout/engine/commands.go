package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/rollout"
)

// Command queues an operator command for app and waits (until ctx ends)
// for the pass that processes it. The command is persisted first, so it
// survives a restart of graylane.
func (e *Engine) Command(ctx context.Context, app string, cmd rollout.Command) (CommandResult, error) {
	if _, ok := rollout.ParseCommand(string(cmd)); !ok {
		return CommandResult{}, fmt.Errorf("unknown command %q", cmd)
	}
	id := randid.Hex(8)
	ch := make(chan CommandResult, 1)
	e.mu.Lock()
	e.waiters[id] = ch
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.waiters, id)
		e.mu.Unlock()
	}()
	for attempt := 0; ; attempt++ {
		rec, rev, err := e.cfg.Store.Load(ctx, app)
		if err != nil {
			return CommandResult{}, err
		}
		if rev == 0 || len(rec.Spec) == 0 {
			return CommandResult{}, fmt.Errorf("app %s: %w", app, ErrNotFound)
		}
		by, via := callerOf(ctx)
		rec.Commands = append(rec.Commands, PendingCommand{ID: id, Command: cmd, At: e.cfg.Clock.Now(), By: by, Via: via})
		rec.UpdatedAt = e.cfg.Clock.Now()
		if _, err := e.cfg.Store.Save(ctx, app, rec, rev); err != nil {
			if errors.Is(err, ErrConflict) && attempt < 20 {
				continue
			}
			return CommandResult{}, fmt.Errorf("queue %s for %s: %w", cmd, app, err)
		}
		break
	}
	e.Trigger(app)
	// The leader may be another graylane: watch the record as well as the
	// local waiter.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-ch:
			return r, nil
		case <-tick.C:
			if rec, _, err := e.cfg.Store.Load(ctx, app); err == nil && rec.LastCommand != nil && rec.LastCommand.ID == id {
				return *rec.LastCommand, nil
			}
		case <-ctx.Done():
			return CommandResult{ID: id, Command: cmd}, fmt.Errorf("command %s for %s queued but not yet processed: %w", cmd, app, ctx.Err())
		}
	}
}

func (e *Engine) resolveCommand(r CommandResult) {
	e.mu.Lock()
	ch := e.waiters[r.ID]
	e.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
	if r.Error == "" {
		e.log.Info("command applied", "command", r.Command, "id", r.ID)
	}
}

type callerKey struct{}

type caller struct{ by, via string }

// WithCaller returns ctx carrying who sends a command (a token name) and
// how (api, console): Command records it for the revision the command
// starts.
func WithCaller(ctx context.Context, by, via string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller{by, via})
}

func callerOf(ctx context.Context) (string, string) {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c.by, c.via
}
