package records

import (
	"context"
	"time"
)

// Document is a release document as the engine received it.
type Document struct {
	Data     []byte
	Version  string
	Revision int64
	// Prev and Next are the spec in force before and the new one as
	// revision records show them (SpecText), for a centre edit's diff.
	Prev, Next string
}

// KeeperConfig configures a Keeper.
type KeeperConfig struct {
	Store *Store
	// Centre names the config centre release documents come from.
	Centre string
	// CentreEdit, if set, is told about every document no intent explains:
	// an edit made in the centre behind graylane's API, with the spec's
	// diff (for the audit log). Errors are the caller's to log.
	CentreEdit func(ctx context.Context, app string, c Cause, diff string) error
	// ConfigEdit, if set, is told about config changed in a config target
	// behind graylane's back (what changed where; no content).
	ConfigEdit func(ctx context.Context, app, what string) error
}

// Keeper is what the engine uses to keep release records
// (engine.Recorder): it finds who wrote each document, writes revisions,
// continues an app's numbering and marks deleted apps.
type Keeper struct {
	cfg KeeperConfig
}

// NewKeeper returns a Keeper.
func NewKeeper(cfg KeeperConfig) *Keeper { return &Keeper{cfg: cfg} }

// Cause looks up the intent recorded for doc: an API write names its
// caller and action; a document without one was edited in the centre
// (and CentreEdit is told).
func (k *Keeper) Cause(ctx context.Context, app string, doc Document) (Cause, error) {
	c := Cause{Kind: CauseCentre, Centre: k.cfg.Centre, DocumentVersion: doc.Version, DocumentRevision: doc.Revision}
	in, err := k.cfg.Store.FindIntent(ctx, app, DocumentDigest(doc.Data))
	if err != nil {
		return Cause{}, err
	}
	if in != nil {
		c.Kind, c.Actor, c.Via, c.Action, c.RollbackTo = CauseAPI, in.Actor, in.Via, in.Action, in.RollbackTo
		return c, nil
	}
	if k.cfg.CentreEdit != nil {
		d := unified("in force", "edited in "+k.cfg.Centre, doc.Prev, doc.Next)
		if err := k.cfg.CentreEdit(ctx, app, c, d); err != nil {
			return Cause{}, err
		}
	}
	return c, nil
}

// ConfigEdited implements engine.ConfigEditRecorder.
func (k *Keeper) ConfigEdited(ctx context.Context, app, what string) error {
	if k.cfg.ConfigEdit == nil {
		return nil
	}
	return k.cfg.ConfigEdit(ctx, app, what)
}

// Save writes revisions.
func (k *Keeper) Save(ctx context.Context, revs []Revision) error {
	return k.cfg.Store.Put(ctx, revs...)
}

// Last returns the highest revision number kept for app.
func (k *Keeper) Last(ctx context.Context, app string) (int, error) {
	return k.cfg.Store.Last(ctx, app)
}

// Deleted marks app deleted at t.
func (k *Keeper) Deleted(ctx context.Context, app string, at time.Time) error {
	return k.cfg.Store.MarkDeleted(ctx, app, at)
}

// CloseDeleted ends a log's open revision because its app was deleted;
// it returns the revision to write (nil when none was open).
func CloseDeleted(l *Log, now time.Time) *Revision {
	if l == nil || l.Open == nil {
		return nil
	}
	r := *l.Open
	r.Outcome, r.EndedAt, r.Reason = Superseded, now, "app deleted"
	if n := len(r.Steps); n > 0 && r.Steps[n-1].EndedAt.IsZero() {
		r.Steps[n-1].EndedAt = now
	}
	l.Open = nil
	return &r
}
