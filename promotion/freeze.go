package promotion

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/rollout/engine"
)

// watchFreezes keeps the freezes in memory from etcd until ctx ends, and
// asks an environment's engine for a pass over every app when its freeze
// changes (an unfrozen release starts at once).
func (c *Controller) watchFreezes(ctx context.Context) {
	for ctx.Err() == nil {
		all, rev, err := c.cfg.Store.Freezes(ctx)
		if err != nil {
			c.log.Warn("read freezes", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		c.setFreezes(all)
		c.once.Do(func() { close(c.synced) })
		for range c.cfg.Store.WatchFreezes(ctx, rev) {
			all, _, err := c.cfg.Store.Freezes(ctx)
			if err != nil {
				break
			}
			c.setFreezes(all)
		}
	}
}

func (c *Controller) setFreezes(all map[string]environments.Freeze) {
	c.fmu.Lock()
	old := c.freezes
	c.freezes = all
	c.fmu.Unlock()
	changed := false
	for _, e := range c.cfg.Set.Envs {
		a, wasFrozen := old[e.Name]
		b, frozen := all[e.Name]
		if wasFrozen != frozen || a.Reason != b.Reason {
			c.log.Info("environment freeze changed", "env", e.Name, "frozen", frozen, "reason", b.Reason)
			c.cfg.Envs[e.Name].Engine.TriggerAll()
			changed = true
		}
	}
	// A freeze or an unfreeze looks at every app again; a watch response
	// that changed nothing does not (a term's first round is full anyway).
	if changed {
		c.Kick()
	}
}

// WaitFreezes blocks until the freezes were read once (or ctx ends).
func (c *Controller) WaitFreezes(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// frozen returns env's freeze (nil: not frozen).
func (c *Controller) frozen(env string) *environments.Freeze {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if f, ok := c.freezes[env]; ok {
		return &f
	}
	return nil
}

// Freezer returns env's engine.Freezer.
func (c *Controller) Freezer(env string) engine.Freezer { return freezer{c: c, env: env} }

type freezer struct {
	c   *Controller
	env string
}

func (f freezer) Frozen() string {
	if z := f.c.frozen(f.env); z != nil {
		return z.Reason + " (by " + z.By + ")"
	}
	return ""
}

// Freeze stops promotions into env and releases starting in it, with a
// reason shown everywhere. It needs a reason.
func (c *Controller) Freeze(ctx context.Context, env, reason, by, via string) (environments.Freeze, error) {
	if _, err := c.env(env); err != nil {
		return environments.Freeze{}, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 500 {
		return environments.Freeze{}, fmt.Errorf("%w: reason: say why %s is frozen (1 to 500 characters)", ErrInvalid, env)
	}
	f := environments.Freeze{Env: env, Reason: reason, By: by, At: c.clock.Now()}
	err := c.cfg.Store.PutFreeze(ctx, f)
	c.audit(ctx, audit.Record{Actor: by, Via: via, Env: env, Action: "freeze " + env + ": " + reason, Outcome: outcomeOf(err), Error: errString(err)})
	if err != nil {
		return f, err
	}
	c.setFreezes(c.withFreeze(env, &f))
	return f, nil
}

// Unfreeze lifts env's freeze.
func (c *Controller) Unfreeze(ctx context.Context, env, by, via string) error {
	if _, err := c.env(env); err != nil {
		return err
	}
	err := c.cfg.Store.DeleteFreeze(ctx, env)
	c.audit(ctx, audit.Record{Actor: by, Via: via, Env: env, Action: "unfreeze " + env, Outcome: outcomeOf(err), Error: errString(err)})
	if err == nil {
		c.setFreezes(c.withFreeze(env, nil))
	}
	return err
}

// withFreeze is the freezes with env's replaced (nil: removed), so this
// replica acts on its own change before the watch reports it.
func (c *Controller) withFreeze(env string, f *environments.Freeze) map[string]environments.Freeze {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	out := map[string]environments.Freeze{}
	for k, v := range c.freezes {
		out[k] = v
	}
	if f == nil {
		delete(out, env)
	} else {
		out[env] = *f
	}
	return out
}

func outcomeOf(err error) string {
	if err != nil {
		return audit.Failed
	}
	return audit.Allowed
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
