package configrelease

import (
	"context"
	"fmt"
	"sort"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/udiff"
	"github.com/graylane/graylane/spec"
)

// Preview is what releasing a spec would write to the config targets: a
// dry-run's config part. Nothing is written to produce it.
type Preview struct {
	// Identity is the release identity the spec would run as.
	Identity string `json:"identity"`
	Digest   string `json:"digest"`
	// Binding says how Identity comes about: "bound" (the version's
	// config), "new binding" (a version released for the first time),
	// "config-only change" (same code, new config: its own identity).
	Binding string `json:"binding"`
	// StableIdentity is the identity whose config the stable locations
	// hold now.
	StableIdentity string `json:"stableIdentity,omitempty"`
	// Writes lists every placement the release would touch, with a diff
	// of the file against what the centre holds now.
	Writes []PreviewWrite `json:"writes"`
}

// PreviewWrite is one placement of a Preview.
type PreviewWrite struct {
	Placement
	// When is "canary" (the version-bound copy, written before the new
	// version gets traffic), "promotion" (the stable location, at
	// promotion) or "now" (a first release).
	When string `json:"when"`
	// Action is create, update or unchanged.
	Action string `json:"action"`
	// Current and Next are the file digests ("" when absent).
	Current string `json:"current,omitempty"`
	Next    string `json:"next"`
	// Diff is a unified diff from what the centre holds to the new file.
	Diff string `json:"diff,omitempty"`
	// Error says why the current content could not be read.
	Error string `json:"error,omitempty"`
}

// maxPreviewDiffLines bounds each file's diff in a Preview.
const maxPreviewDiffLines = 400

// Preview reads rel's config (validating it like Prepare), works out the
// release identity and reads every placement it would write from the
// centres, without writing anything: not the history, not the centres.
// stable is the identity running now ("" for a first release).
func (m *Manager) Preview(ctx context.Context, rel *spec.Release, stable string) (*Preview, error) {
	b, err := Resolve(ctx, rel.App, rel.Config, m.cfg.Store)
	if err != nil {
		return nil, err
	}
	bound, ok, err := m.cfg.Store.Entry(ctx, rel.App, rel.Version)
	if err != nil {
		return nil, err
	}
	p := &Preview{Digest: b.Digest, StableIdentity: stable, Binding: "bound"}
	boundDigest := ""
	if ok {
		boundDigest = bound.Bundle.Digest
	} else {
		p.Binding = "new binding"
	}
	p.Identity = Identity(rel.Version, b.Digest, boundDigest)
	if p.Identity != rel.Version {
		p.Binding = "config-only change"
	}
	if p.Identity == stable {
		return p, nil // nothing moves: the stable config is this one
	}
	var roles []struct{ role, when string }
	if stable == "" {
		roles = append(roles, struct{ role, when string }{RoleStable, "now"})
	} else {
		roles = append(roles, struct{ role, when string }{RoleGray, "canary"}, struct{ role, when string }{RoleStable, "promotion"})
	}
	for _, r := range roles {
		ps, err := Placements(rel.App, rel.Config, b.Files, r.role, p.Identity)
		if err != nil {
			return nil, &spec.ValidationError{Errors: []spec.FieldError{{Path: "config.targets", Msg: err.Error()}}}
		}
		for _, pl := range ps {
			p.Writes = append(p.Writes, m.previewOne(ctx, pl, b.File(pl.File), r.when))
		}
	}
	sort.SliceStable(p.Writes, func(i, j int) bool { return p.Writes[i].When == "canary" && p.Writes[j].When != "canary" })
	return p, nil
}

func (m *Manager) previewOne(ctx context.Context, pl Placement, f *configwire.File, when string) PreviewWrite {
	w := PreviewWrite{Placement: pl, When: when, Next: f.SHA256, Action: "create"}
	docs, ok := m.centres[pl.Centre]
	if !ok {
		w.Error = fmt.Sprintf("no %s centre is configured in graylane: the release would wait at the config gate", pl.Centre)
		return w
	}
	cur, err := m.read(ctx, docs, pl)
	switch {
	case isNotFound(err):
		w.Diff = udiff.Unified(pl.String()+" (absent)", "new "+pl.File, "", f.Content, maxPreviewDiffLines)
	case err != nil:
		w.Error = "read the current content: " + err.Error()
	default:
		w.Current, _ = configwire.FileDigest(pl.Format, cur.Data)
		w.Action = "update"
		if w.Current == f.SHA256 {
			w.Action = "unchanged"
		}
		w.Diff = udiff.Unified(pl.String(), "new "+pl.File, string(cur.Data), f.Content, maxPreviewDiffLines)
	}
	return w
}
