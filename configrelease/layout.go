package configrelease

// The layout: which config each placement should hold, worked out from
// the rollout status (pure: no store, no centre, no clock).

import (
	"context"
	"sort"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// wanted is a placement with the file it should hold (nil: absent).
type wanted struct {
	p        Placement
	file     *configwire.File
	identity string
}

// op is one write or delete to do, in a phase: 1 gray writes, 2 stable
// writes and deletes, 3 gray deletes. A phase starts only when the earlier
// ones are all verified, so a rollback pins the serving version's config
// before the stable config changes, and a promotion removes the gray copy
// only after the stable config holds it.
type op struct {
	key   string
	w     wanted
	phase int
}

// loadBundles reads from the history the bundles of the identities a
// layout may name: stable (or, before the first release, the one being
// prepared), canary, previous.
func (m *Manager) loadBundles(ctx context.Context, in Pass) (map[string]*Bundle, error) {
	st := in.Status
	bundles := map[string]*Bundle{}
	for _, id := range []string{st.StableVersion, in.Identity, st.CanaryVersion, st.PreviousVersion} {
		if id == "" || bundles[id] != nil {
			continue
		}
		e, ok, err := m.cfg.Store.Entry(ctx, in.App, id)
		if err != nil {
			return nil, err
		}
		if ok {
			b := e.Bundle
			bundles[id] = &b
		}
	}
	return bundles, nil
}

// planLayout works out, from the rollout status alone, which config the
// stable locations and the version-bound copies should hold. It is pure
// (table-tested in layout_test.go):
//
//   - no rollout: the stable identity's config is stable, no copy;
//   - a rollout of X: X's config on X's copies, the stable one stays;
//   - a rollback to X (Status.Rollback): X's config becomes stable while
//     the version still serving keeps its own config on its copies until
//     traffic has moved;
//   - a copy whose digest equals the stable one is not needed (its
//     instances read the stable config), nor one without a bundle.
//
// identity is the release identity being prepared; it is the stable one
// before the first release.
func planLayout(st rollout.Status, identity string, bundles map[string]*Bundle) (lay Layout, stableB, grayB *Bundle) {
	stableID, canary := st.StableVersion, st.CanaryVersion
	if stableID == "" {
		stableID = identity
	}
	if canary != "" && st.Rollback {
		lay.StableIdentity, stableB = canary, bundles[canary]
		lay.GrayIdentity, grayB = stableID, bundles[stableID]
	} else {
		lay.StableIdentity, stableB = stableID, bundles[stableID]
		if canary != "" {
			lay.GrayIdentity, grayB = canary, bundles[canary]
		}
	}
	if grayB != nil && stableB != nil && grayB.Digest == stableB.Digest {
		lay.GrayIdentity, grayB = "", nil // its instances read the stable config
	}
	if grayB == nil {
		lay.GrayIdentity = ""
	}
	if stableB != nil {
		lay.StableDigest = stableB.Digest
	}
	if grayB != nil {
		lay.GrayDigest = grayB.Digest
	}
	return lay, stableB, grayB
}

// desired lists every placement the layout needs, by key.
func desired(app string, cfg *spec.Config, lay Layout, stableB, grayB *Bundle, applied map[string]AppliedPlacement) (map[string]wanted, error) {
	out := map[string]wanted{}
	if stableB != nil {
		ps, err := Placements(app, cfg, stableB.Files, RoleStable, "")
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out[p.Key()] = wanted{p: p, file: stableB.File(p.File), identity: lay.StableIdentity}
		}
		// files that the stable config no longer has, at targets that
		// still exist, are deleted
		for k, ap := range applied {
			if _, ok := out[k]; ok || ap.Placement.Role != RoleStable {
				continue
			}
			if inScope(app, cfg, ap.Placement) {
				out[k] = wanted{p: ap.Placement, identity: lay.StableIdentity}
			}
		}
	}
	if grayB != nil {
		ps, err := Placements(app, cfg, grayB.Files, RoleGray, lay.GrayIdentity)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out[p.Key()] = wanted{p: p, file: grayB.File(p.File), identity: lay.GrayIdentity}
		}
	}
	// every other gray copy graylane made goes
	for k, ap := range applied {
		if _, ok := out[k]; !ok && ap.Placement.Role == RoleGray {
			out[k] = wanted{p: ap.Placement, identity: ap.Placement.Identity}
		}
	}
	return out, nil
}

// inScope reports whether a stable placement graylane wrote belongs to a
// target the spec still has (else it is forgotten, not deleted).
func inScope(app string, cfg *spec.Config, p Placement) bool {
	if p.Target >= len(cfg.Targets) {
		return false
	}
	t := &cfg.Targets[p.Target]
	if t.Centre() != p.Centre || !t.Applies(p.File) {
		return false
	}
	loc, err := configwire.StableLocation(app, t, p.File)
	return err == nil && loc == p.Loc
}

func (w wanted) sha() string {
	if w.file == nil {
		return ""
	}
	return w.file.SHA256
}

func phaseOf(w wanted) int {
	switch {
	case w.p.Role == RoleGray && w.file != nil:
		return 1
	case w.p.Role == RoleStable:
		return 2
	default:
		return 3
	}
}

// pending lists the placements whose verified content is not what they
// should hold.
func pending(want map[string]wanted, applied map[string]AppliedPlacement) []op {
	var ops []op
	for k, w := range want {
		ap, ok := applied[k]
		if w.file == nil && !ok {
			continue // never written, nothing to delete
		}
		if ok && ap.Verified && ap.SHA256 == w.sha() {
			continue
		}
		ops = append(ops, op{key: k, w: w, phase: phaseOf(w)})
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].phase != ops[j].phase {
			return ops[i].phase < ops[j].phase
		}
		return ops[i].key < ops[j].key
	})
	return ops
}

func allVerified(want map[string]wanted, applied map[string]AppliedPlacement, role string) bool {
	for k, w := range want {
		if w.p.Role != role || w.file == nil {
			continue
		}
		if ap, ok := applied[k]; !ok || !ap.Verified || ap.SHA256 != w.sha() {
			return false
		}
	}
	return true
}

// planGate is what the planner is told (pure): each identity's digest,
// whether its instances would load it now (Placed), and whether the
// stable config is settled (StableDigest: in place and nothing else left
// to write or remove, so a Healthy release leaves every centre in its
// final state). Loaded is filled from the instances' reports.
func planGate(cfg *spec.Config, lay Layout, stableB, grayB *Bundle, bundles map[string]*Bundle, want map[string]wanted, applied map[string]AppliedPlacement) *rollout.ConfigGate {
	g := &rollout.ConfigGate{Digests: map[string]string{}, Placed: map[string]bool{}, Loaded: map[string]int{}, Verify: cfg.VerifiesInstances()}
	for id, b := range bundles {
		g.Digests[id] = b.Digest
	}
	stableOK := stableB != nil && allVerified(want, applied, RoleStable)
	grayOK := grayB != nil && allVerified(want, applied, RoleGray)
	if stableOK && len(pending(want, applied)) == 0 {
		g.StableDigest = stableB.Digest
	}
	for id, d := range g.Digests {
		g.Placed[id] = (id == lay.GrayIdentity && grayOK) || (stableOK && d == stableB.Digest)
	}
	return g
}
