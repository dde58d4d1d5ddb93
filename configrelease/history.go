package configrelease

// History: what became of each config version.

import (
	"context"
	"fmt"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/rollout"
)

// settled records, once a layout is fully in place, what became of each
// config version (history events) and says so.
func (m *Manager) settled(ctx context.Context, app string, from, to Layout, bundles map[string]*Bundle) []rollout.Event {
	var events []rollout.Event
	mark := func(id, kind, detail string) {
		if id == "" {
			return
		}
		e, ok, err := m.cfg.Store.Entry(ctx, app, id)
		if err != nil || !ok {
			return
		}
		e.Events = append(e.Events, HistoryEvent{At: m.cfg.Clock.Now(), Kind: kind, Detail: detail})
		if len(e.Events) > maxHistoryEvents {
			e.Events = e.Events[len(e.Events)-maxHistoryEvents:]
		}
		if err := m.cfg.Store.PutEntry(ctx, e, to.StableIdentity, to.GrayIdentity, from.StableIdentity); err != nil {
			m.log.Warn("record config history", "app", app, "identity", id, "err", err)
		}
	}
	wasStable := func(id string) bool {
		e, ok, err := m.cfg.Store.Entry(ctx, app, id)
		if err != nil || !ok {
			return false
		}
		for _, ev := range e.Events {
			if ev.Kind == "stable" {
				return true
			}
		}
		return false
	}
	switch {
	case to.GrayIdentity == "" || to.GrayIdentity == from.GrayIdentity:
	case to.GrayIdentity == from.StableIdentity:
		mark(to.GrayIdentity, "pinned", "kept on a version-bound copy for its instances while the release rolls back to "+to.StableIdentity)
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigPinned",
			Message: fmt.Sprintf("config %s of %s is pinned for %s's instances while %s's config %s comes back on every target", configwire.Short(to.GrayDigest), to.GrayIdentity, to.GrayIdentity, to.StableIdentity, configwire.Short(to.StableDigest))})
	default:
		mark(to.GrayIdentity, "gray", "on a version-bound copy for "+to.GrayIdentity+"'s instances on every target")
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigPlaced",
			Message: fmt.Sprintf("config %s of %s is on every target for %s's instances only (stable stays %s)", configwire.Short(to.GrayDigest), to.GrayIdentity, to.GrayIdentity, orNone(to.StableIdentity))})
	}
	if to.StableIdentity != from.StableIdentity && to.StableDigest != "" {
		mark(to.StableIdentity, "stable", "the stable config on every target, replacing "+orNone(from.StableIdentity))
		mark(from.StableIdentity, "replaced", "by "+to.StableIdentity)
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigPromoted",
			Message: fmt.Sprintf("config %s of %s is the stable config on every target (was %s)", configwire.Short(to.StableDigest), to.StableIdentity, orNone(from.StableIdentity))})
	}
	if from.GrayIdentity != "" && from.GrayIdentity != to.GrayIdentity && from.GrayIdentity != to.StableIdentity && !wasStable(from.GrayIdentity) {
		mark(from.GrayIdentity, "withdrawn", "its version-bound copies were removed")
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigWithdrawn",
			Message: fmt.Sprintf("the version-bound copies of %s's config were removed from every target", from.GrayIdentity)})
	}
	return events
}
