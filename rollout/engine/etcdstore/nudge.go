package etcdstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/rollout/engine"
)

// DefaultNudgePrefix is where observe callbacks are passed between
// replicas unless configured otherwise.
const DefaultNudgePrefix = "/graylane/nudge/"

// Nudger is an engine.Nudger on etcd: a nudge is a put of
// <prefix><app>, which every replica watches. One key per app that was
// ever nudged (a timestamp); it goes with the app (Forget).
type Nudger struct {
	c      *clientv3.Client
	prefix string
}

var _ engine.Nudger = (*Nudger)(nil)

// NewNudger returns a Nudger under prefix (DefaultNudgePrefix when empty).
func NewNudger(c *clientv3.Client, prefix string) *Nudger {
	return &Nudger{c: c, prefix: dirPrefix(prefix, DefaultNudgePrefix)}
}

// Nudge implements engine.Nudger.
func (n *Nudger) Nudge(ctx context.Context, app string) error {
	if _, err := n.c.Put(ctx, n.prefix+app, strconv.FormatInt(time.Now().UnixMilli(), 10)); err != nil {
		return fmt.Errorf("etcd put %s: %w", n.prefix+app, err)
	}
	return nil
}

// Forget removes an app's nudge key.
func (n *Nudger) Forget(ctx context.Context, app string) error {
	if _, err := n.c.Delete(ctx, n.prefix+app); err != nil {
		return fmt.Errorf("etcd delete %s: %w", n.prefix+app, err)
	}
	return nil
}

// Nudges implements engine.Nudger: a watch of the prefix from now on
// (nudges sent while this replica was away are not replayed: its passes
// at start look at every app anyway).
func (n *Nudger) Nudges(ctx context.Context) <-chan string {
	out := make(chan string, 256)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			wch := n.c.Watch(clientv3.WithRequireLeader(ctx), n.prefix, clientv3.WithPrefix(), clientv3.WithFilterDelete())
			for resp := range wch {
				if resp.Err() != nil {
					break
				}
				for _, ev := range resp.Events {
					app := strings.TrimPrefix(string(ev.Kv.Key), n.prefix)
					select {
					case out <- app:
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return out
}
