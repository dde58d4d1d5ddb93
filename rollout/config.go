package rollout

import (
	"fmt"
	"sort"
	"strings"
)

// ConfigGate is what the config layer (configrelease) reports about the
// config bound to each release identity, for config-in-step: the planner
// holds a release at the config gate until the config is where the
// instances read it and they report having loaded it.
//
// A release identity is what the planner calls a version: the code
// version, or "<version>_cfg<8 hex>" when only the config changed.
//
// The gate, for the version being rolled out (Status.CanaryVersion, also
// a fast rollback's target) and for the stable version:
//
//   - no instance of a version is started while its config is not placed
//     (Placed false): running instances are kept, none are added;
//   - an instance of the version being rolled out counts as ready only once
//     its config is placed and, with Verify, only as many instances count
//     as report its checksum (Loaded). Every strategy moves traffic and
//     completes steps on ready instances, so traffic waits at the gate;
//   - the release is Healthy only when every target's stable location holds
//     the stable version's config and nothing else is left to write or
//     remove (StableDigest equals its digest); until then it is
//     Progressing with the gate's message.
//
// The gate is level-triggered like the rest of the plan: the config layer
// reports facts, the planner never remembers them.
type ConfigGate struct {
	// Digests maps release identities (stable, canary, previous) to their
	// config digest. An identity without one has no bound config (it was
	// released before its app had a config section): nothing waits for it.
	Digests map[string]string `json:"digests,omitempty"`
	// StableDigest is the digest every target's stable location holds,
	// verified by reading it back, once nothing else is pending either (""
	// while targets disagree, are not yet verified, or a version-bound copy
	// is still to be removed).
	StableDigest string `json:"stableDigest,omitempty"`
	// Placed reports, by identity, whether that identity's instances would
	// load its config now: it is written and verified on every target where
	// they read it (their version-bound copy, or the stable location when
	// the digests are equal).
	Placed map[string]bool `json:"placed,omitempty"`
	// Loaded counts, by identity, the ready instances that report the
	// checksum of that identity's config.
	Loaded map[string]int `json:"loaded,omitempty"`
	// Verify makes traffic wait for Loaded (config.verifyInstances).
	Verify bool `json:"verify,omitempty"`
	// Waiting says what the config layer is doing or waiting for, e.g.
	// "apollo: unavailable, retrying in 2s"; it is shown in messages.
	Waiting string `json:"waiting,omitempty"`
}

// placed reports whether v's config is where its instances read it; an
// identity without a bound config is always placed.
func (g *ConfigGate) placed(v string) bool {
	return g.Digests[v] == "" || g.Placed[v]
}

// configGated is obs' view of a version's counts through the config gate:
// the version being rolled out has only as many ready instances as loaded
// its config.
func (p *planner) configGated(v string, c Count) Count {
	g := p.in.Config
	if g == nil || v == "" || v != p.next.CanaryVersion || g.Digests[v] == "" {
		return c
	}
	if !g.placed(v) {
		c.Ready = 0
	} else if g.Verify {
		c.Ready = min(c.Ready, g.Loaded[v])
	}
	return c
}

// configGate runs after a strategy computed its targets: it keeps
// instances of a version whose config is not placed from being started,
// and says in the message what the release waits for.
func (p *planner) configGate() {
	g := p.in.Config
	if g == nil {
		return
	}
	next := &p.next
	for _, v := range []string{next.CanaryVersion, next.StableVersion} {
		if v == "" || g.placed(v) {
			continue
		}
		if have := p.in.Observed.Versions[v].Total; p.want[v] > have {
			p.want[v] = have
		}
	}
	why := ""
	d := next.CanaryVersion
	switch {
	case d != "" && g.Digests[d] == "":
	case d != "" && !g.placed(d):
		why = fmt.Sprintf("config %s of %s is not yet on every target", short(g.Digests[d]), d)
	case d != "" && g.Verify && g.Loaded[d] < p.in.Observed.Versions[d].Ready:
		why = fmt.Sprintf("%d/%d ready %s instances report config %s", g.Loaded[d], p.in.Observed.Versions[d].Ready, d, short(g.Digests[d]))
	case d == "" && !p.configSettled():
		why = fmt.Sprintf("config %s of %s is not yet settled on every target", short(g.Digests[next.StableVersion]), next.StableVersion)
	}
	if why == "" {
		return
	}
	if g.Waiting != "" {
		why += " (" + g.Waiting + ")"
	}
	if p.msg == "" {
		p.msg = "config gate: " + why
	} else {
		p.msg += "; config gate: " + why
	}
	p.wake(pollWhileConverging)
}

// configSettled reports whether every target's stable location holds the
// stable version's config.
func (p *planner) configSettled() bool {
	g := p.in.Config
	if g == nil {
		return true
	}
	want := g.Digests[p.next.StableVersion]
	return want == "" || want == g.StableDigest
}

// short abbreviates a config digest for messages.
func short(digest string) string {
	if len(digest) > 8 {
		return digest[:8]
	}
	return digest
}

// String summarises the gate for logs and decision traces.
func (g *ConfigGate) String() string {
	if g == nil {
		return "-"
	}
	var placed, loaded []string
	for v, ok := range g.Placed {
		if ok {
			placed = append(placed, v)
		}
	}
	for v, n := range g.Loaded {
		loaded = append(loaded, fmt.Sprintf("%s=%d", v, n))
	}
	sort.Strings(placed)
	sort.Strings(loaded)
	return fmt.Sprintf("stable:%s placed:[%s] loaded:[%s]", short(g.StableDigest), strings.Join(placed, " "), strings.Join(loaded, " "))
}
