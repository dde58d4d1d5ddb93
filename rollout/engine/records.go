package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// Recorder keeps release records (records.Keeper): who wrote each
// document, and the numbered revisions passes produce. Every method may
// block on etcd; errors fail the pass, which is retried.
type Recorder interface {
	// Cause says who wrote an app's document: the intent the API recorded
	// before writing it, or an edit in the centre.
	Cause(ctx context.Context, app string, doc records.Document) (records.Cause, error)
	// Save writes revisions whole (idempotent).
	Save(ctx context.Context, revs []records.Revision) error
	// Last returns the highest revision number kept for app (0: none).
	Last(ctx context.Context, app string) (int, error)
	// Deleted notes that app was deleted at t.
	Deleted(ctx context.Context, app string, at time.Time) error
}

// ConfigEditRecorder is a Recorder that also records config changed
// behind graylane's back in a config target (records.Keeper, for the
// audit log). Optional: found by type assertion.
type ConfigEditRecorder interface {
	// ConfigEdited records one ConfigDrift event's first line (what
	// changed where; never the config's content).
	ConfigEdited(ctx context.Context, app, what string) error
}

// recordDrift hands the pass's ConfigDrift events to the recorder.
func (p *pass) recordDrift(ctx context.Context, events []rollout.Event) {
	r, ok := p.e.cfg.Records.(ConfigEditRecorder)
	if !ok {
		return
	}
	for _, ev := range events {
		if ev.Reason != "ConfigDrift" {
			continue
		}
		what, _, _ := strings.Cut(ev.Message, "\n")
		if err := r.ConfigEdited(ctx, p.app, what); err != nil {
			p.log.Warn("record a config edit made behind graylane's back", "err", err)
		}
	}
}

// seen is when the engine received an app's document at a revision.
type seen struct {
	revision int64
	at       time.Time
}

// revisionLog returns the record's revision log (nil without records),
// refusing one written by a newer graylane.
func (p *pass) revisionLog() (*records.Log, error) {
	l := p.rec.Revisions
	if l == nil {
		return nil, nil
	}
	if err := records.CheckSchema("revision log of "+p.app, l.Schema); err != nil {
		return nil, err
	}
	return l, nil
}

// lookupCause finds, once per document, who wrote the document in force.
func (p *pass) lookupCause(ctx context.Context) error {
	r := p.e.cfg.Records
	if r == nil || p.doc.err != nil || !p.doc.present || p.doc.revision != p.rec.SpecRevision {
		return nil
	}
	l, err := p.revisionLog()
	if err != nil {
		return err
	}
	if l == nil {
		l = &records.Log{Schema: records.SchemaVersion}
		if len(p.stored.Spec) > 0 && p.stored.SpecRevision == p.doc.revision {
			// in force before this graylane kept records: nobody to name
			l.Cause = &records.Cause{Centre: p.e.cfg.Source.Name(), DocumentVersion: p.doc.version, DocumentRevision: p.doc.revision}
			p.rec.Revisions = l
			return nil
		}
	}
	if l.Cause != nil && l.Cause.DocumentRevision == p.doc.revision {
		return nil
	}
	prev := ""
	if len(p.stored.Spec) > 0 {
		if l.SpecDigest != "" && l.SpecDigest == spec.HashJSON(p.stored.Spec) {
			prev = l.Spec // the last revision's text is the spec in force's
		} else {
			var old spec.Release
			if json.Unmarshal(p.stored.Spec, &old) == nil {
				prev = records.SpecText(&old)
			}
		}
	}
	c, err := r.Cause(ctx, p.app, records.Document{Data: p.doc.data, Version: p.doc.version, Revision: p.doc.revision,
		Prev: prev, Next: p.specText(p.doc.rel)})
	if err != nil {
		return fmt.Errorf("who wrote the document of %s: %w", p.app, err)
	}
	cp := *l
	cp.Cause = &c
	p.rec.Revisions = &cp
	return nil
}

// rollbackIntent reports whether the document in force was written by a
// rollback to a revision.
func (p *pass) rollbackIntent() bool {
	l := p.rec.Revisions
	return l != nil && l.Cause != nil && l.Cause.RollbackTo > 0 && l.Cause.DocumentRevision == p.rec.SpecRevision
}

// track advances the revision log with the pass's decision and writes the
// revisions it changed, before the record that names them is saved.
func (p *pass) track(ctx context.Context) (records.Changes, error) {
	r := p.e.cfg.Records
	if r == nil {
		return records.Changes{}, nil
	}
	l, err := p.revisionLog()
	if err != nil {
		return records.Changes{}, err
	}
	var log records.Log
	if l != nil {
		log = *l
	}
	if !log.Seeded {
		last, err := r.Last(ctx, p.app)
		if err != nil {
			return records.Changes{}, fmt.Errorf("revisions of %s: %w", p.app, err)
		}
		log.Last, log.Seeded = max(log.Last, last), true
	}
	in := records.Pass{App: p.app, Now: p.now, Before: p.rec.Status, After: p.plan.Status, Events: p.plan.Events,
		Spec: p.spec, Identity: p.identity, Checks: p.checks, Observed: p.obs,
		Command: p.cmd.Command, CommandBy: p.cmd.By, CommandVia: p.cmd.Via}
	if log.Cause != nil && log.Cause.DocumentRevision == p.rec.SpecRevision {
		in.Cause = *log.Cause
	} else {
		in.Cause = records.Cause{Kind: "", Centre: p.e.cfg.Source.Name()}
	}
	p.e.mu.Lock()
	if s, ok := p.e.seen[p.app]; ok && s.revision == p.rec.SpecRevision {
		in.SeenAt = s.at
	}
	p.e.mu.Unlock()
	if starting := p.startingIdentity(); starting != "" {
		in.SpecText = p.specText(p.spec)
		if in.Config, err = p.configRef(ctx, starting); err != nil {
			return records.Changes{}, err
		}
	} else {
		in.SpecText = log.Spec
	}
	next, ch := records.Track(log, in)
	if !ch.Empty() {
		if err := r.Save(ctx, ch.Write); err != nil {
			return records.Changes{}, fmt.Errorf("write revisions of %s: %w", p.app, err)
		}
	}
	p.rec.Revisions = &next
	return ch, nil
}

// startingIdentity is the identity whose rollout (or first release)
// starts in this pass, "" when none does.
func (p *pass) startingIdentity() string {
	b, a := p.rec.Status, p.plan.Status
	switch {
	case a.CanaryVersion != "" && a.CanaryVersion != b.CanaryVersion:
		return a.CanaryVersion
	case b.StableVersion == "" && a.StableVersion != "":
		return a.StableVersion
	case (p.rec.Revisions == nil || p.rec.Revisions.Last == 0) && b.StableVersion != "":
		return b.StableVersion // adopted
	}
	return ""
}

// configRef is the config bound to identity, from the config history.
func (p *pass) configRef(ctx context.Context, identity string) (*records.ConfigRef, error) {
	if p.e.cfg.Config == nil || p.spec.Config == nil {
		return nil, nil
	}
	h, ok, err := p.e.cfg.Config.Entry(ctx, p.app, identity)
	if err != nil {
		return nil, fmt.Errorf("config history of %s/%s: %w", p.app, identity, err)
	}
	if !ok {
		return nil, nil
	}
	ref := &records.ConfigRef{Identity: h.Identity, Digest: h.Bundle.Digest}
	for _, f := range h.Bundle.Files {
		ref.Files = append(ref.Files, records.FileRef{Name: f.Name, Format: f.Format, SHA256: f.SHA256, Bytes: len(f.Content)})
	}
	return ref, nil
}

// forgetRecords closes a deleted app's open revision and marks the app
// deleted (its revisions expire later).
func (p *pass) forgetRecords(ctx context.Context) error {
	r := p.e.cfg.Records
	if r == nil {
		return nil
	}
	if l := p.rec.Revisions; l != nil {
		cp := *l
		if rev := records.CloseDeleted(&cp, p.now); rev != nil {
			if err := r.Save(ctx, []records.Revision{*rev}); err != nil {
				return fmt.Errorf("close the open revision of deleted %s: %w", p.app, err)
			}
		}
	}
	if err := r.Deleted(ctx, p.app, p.now); err != nil {
		return fmt.Errorf("mark %s deleted in its records: %w", p.app, err)
	}
	return nil
}

// releaseMetrics are the release statistics as Prometheus metrics (the
// same counts and durations as GET /api/v1/stats, over graylane's
// lifetime rather than a window), per environment: per app, one series
// costs about 550 bytes and a histogram's 15 buckets 1.5 KB, 50 MB of
// heap at 20,000 apps. Per app: GET /api/v1/apps/{app}/stats.
type releaseMetrics struct {
	started *prometheus.CounterVec
	ended   *prometheus.CounterVec
	lead    *prometheus.HistogramVec
	restore *prometheus.HistogramVec
}

func newReleaseMetrics(reg prometheus.Registerer) *releaseMetrics {
	buckets := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400}
	m := &releaseMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graylane_releases_started_total", Help: "Releases (revisions) started, by kind (release, rollback).",
		}, []string{"env", "kind"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graylane_releases_ended_total", Help: "Releases (revisions) ended, by outcome (promoted, aborted, rolled-back, superseded, failed).",
		}, []string{"env", "outcome"}),
		lead: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "graylane_release_lead_time_seconds", Help: "Lead time of promoted releases: desired version seen to Healthy.",
			Buckets: buckets,
		}, []string{"env"}),
		restore: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "graylane_release_time_to_restore_seconds", Help: "Time to restore: failure detected to all traffic back on a good version (failed releases and rollbacks to a revision).",
			Buckets: buckets,
		}, []string{"env"}),
	}
	reg.MustRegister(m.started, m.ended, m.lead, m.restore)
	return m
}

// observeRevisions counts the revisions a saved pass started and ended.
func (m *Metrics) observeRevisions(ch records.Changes) {
	if m == nil || m.releases == nil {
		return
	}
	r := m.releases
	for _, s := range ch.Started {
		if s.Kind != records.KindAdopted {
			r.started.WithLabelValues(m.env, s.Kind).Inc()
		}
	}
	for _, e := range ch.Ended {
		if e.Kind == records.KindAdopted {
			continue
		}
		r.ended.WithLabelValues(m.env, e.Outcome).Inc()
		switch {
		case e.Outcome != records.Promoted:
		case e.Kind == records.KindRelease:
			r.lead.WithLabelValues(m.env).Observe(e.Took(e.EndedAt).Seconds())
		case e.RollbackTo > 0:
			r.restore.WithLabelValues(m.env).Observe(e.Took(e.EndedAt).Seconds())
		}
	}
	for _, w := range ch.Restored {
		r.restore.WithLabelValues(m.env).Observe(w.RestoredAt.Sub(w.FailedAt).Seconds())
	}
}

// specText is records.SpecText(rel), rendered once per pass: a pass that
// starts a new document's revision needs the text for the cause's diff
// and for the revision record.
func (p *pass) specText(rel *spec.Release) string {
	if rel != p.textOf { // (nil's text is "", as p.text starts)
		p.textOf, p.text = rel, records.SpecText(rel)
	}
	return p.text
}
