package records

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// Log is an app's revision bookkeeping. The engine persists it inside the
// app's state record, with compare-and-swap, so the revision in progress
// survives a restart; the revisions themselves are written to the Store
// before the record that names them (Track's Changes.Write).
type Log struct {
	Schema int `json:"schema"`
	// Last is the highest revision number given (0: none yet).
	Last int `json:"last"`
	// Seeded is set once Last was checked against the Store: an app whose
	// state was lost or that was deleted and created again continues its
	// numbering.
	Seeded bool `json:"seeded,omitempty"`
	// Open is the revision being rolled out.
	Open *Revision `json:"open,omitempty"`
	// Restoring is a revision that failed, until all traffic is back on
	// the stable version (its RestoredAt).
	Restoring *Revision `json:"restoring,omitempty"`
	// Serving is the revision whose version is stable.
	Serving int `json:"serving,omitempty"`
	// Spec is revision Last's spec, the base of the next revision's diff.
	Spec string `json:"spec,omitempty"`
	// SpecDigest is the digest of Spec's release (spec.Release.Hash):
	// when the spec in force before a new document has it, Spec is its
	// text and need not be rendered again. Empty in logs written before
	// it was kept.
	SpecDigest string `json:"specDigest,omitempty"`
	// Cause says who wrote the document in force (looked up once per
	// document; Cause.DocumentRevision names it).
	Cause *Cause `json:"cause,omitempty"`
}

// Pass is what one engine pass tells Track. Track is pure: it reads
// nothing else, and the same Pass gives the same answer.
type Pass struct {
	App string
	Now time.Time
	// SeenAt is when graylane received the document in force (zero: Now).
	SeenAt time.Time
	// Before is the persisted status, After the planner's decision.
	Before, After rollout.Status
	// Events are the pass's events (the planner's and the config layer's).
	Events []rollout.Event
	// Spec is the release in force as written; SpecText its text for the
	// record (SpecText, below, makes it).
	Spec     *spec.Release
	SpecText string
	// Identity is the release identity of Spec.
	Identity string
	// Config is the bound config of the identity that starts in this pass
	// (nil without config or when nothing starts).
	Config *ConfigRef
	// Cause says who wrote the document in force.
	Cause Cause
	// Command is the operator command processed in this pass, with the
	// caller who sent it.
	Command    rollout.Command
	CommandBy  string
	CommandVia string
	// Checks are the analysis results (rollout.Input.Checks).
	Checks map[string]rollout.CheckResult
	// Observed is what the backend and router reported before the pass
	// applied its decision.
	Observed rollout.Observed
}

// Changes is what Track changed.
type Changes struct {
	// Write lists the revisions to write (new or changed), by number.
	Write []Revision
	// Started and Ended are the revisions that started and got their
	// outcome in this pass (for metrics).
	Started []Revision
	Ended   []Revision
	// Restored are failed revisions whose traffic came back on the stable
	// version in this pass.
	Restored []Revision
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return len(c.Write) == 0 }

// tracker is one run of Track.
type tracker struct {
	l       Log
	p       Pass
	changed map[int]*Revision
	ch      Changes
}

// Track advances an app's revision log by one engine pass:
//
//   - an app with a stable version and no revision yet gets an adopted
//     revision for it;
//   - a rollout that starts (a new canary version, or the first release)
//     opens a revision numbered Last+1, with its cause, config, spec and
//     the diff against the previous revision's spec;
//   - the open revision follows its steps, analysis verdicts and a
//     progress deadline passing;
//   - an outcome the planner records (Status.History) closes it:
//     promoted, superseded, aborted or rolled back by an operator, or
//     failed when graylane stopped it (analysis, deadline); a rollback
//     revision that completes is promoted;
//   - a failed revision gets RestoredAt once the router (or, without one,
//     the instances) show all traffic back on the stable version.
func Track(l Log, p Pass) (Log, Changes) {
	t := &tracker{l: l, p: p, changed: map[int]*Revision{}}
	t.l.Schema = SchemaVersion
	if t.l.Open != nil {
		o := *t.l.Open
		t.l.Open = &o
	}
	if t.l.Restoring != nil {
		r := *t.l.Restoring
		t.l.Restoring = &r
	}
	t.adopt()
	t.outcomes()
	t.start()
	t.progress()
	t.restore()
	nums := make([]int, 0, len(t.changed))
	for n := range t.changed {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		t.ch.Write = append(t.ch.Write, *t.changed[n])
	}
	return t.l, t.ch
}

func (t *tracker) touch(r *Revision) { t.changed[r.Number] = r }

// adopt gives an app released before revisions were kept a revision for
// the version it runs.
func (t *tracker) adopt() {
	b := t.p.Before
	if t.l.Last != 0 || b.StableVersion == "" {
		return
	}
	r := &Revision{Schema: SchemaVersion, App: t.p.App, Number: 1, Kind: KindAdopted, Identity: b.StableVersion,
		Version: spec.CodeVersion(b.StableVersion), Cause: Cause{Kind: CauseGraylane, Action: "adopted when release records started"},
		Strategy: t.strategy(), StartedAt: t.p.Now, SeenAt: t.p.Now, EndedAt: t.p.Now, Outcome: Promoted,
		Reason: "running when release records started"}
	if t.p.Spec != nil && t.p.Identity == b.StableVersion {
		r.SpecDigest, r.Spec = t.p.Spec.Hash(), t.p.SpecText
	}
	t.l.Last, t.l.Serving, t.l.Spec, t.l.SpecDigest = 1, 1, r.Spec, r.SpecDigest
	t.touch(r)
}

// outcomes closes the open revision with the outcome the planner
// recorded, or when its version is no longer rolled out.
func (t *tracker) outcomes() {
	a := t.p.After
	for _, e := range newEntries(t.p.Before.History, a.History) {
		if o := t.l.Open; o != nil && o.Identity == e.Version {
			outcome, reason := t.outcomeOf(o, e.Outcome)
			t.close(outcome, reason)
		}
	}
	o := t.l.Open
	if o == nil {
		return
	}
	switch {
	case o.Identity == a.StableVersion && a.CanaryVersion == "" && a.Phase == rollout.Healthy:
		// the first release (no strategy runs, no history entry)
		t.close(Promoted, "")
	case o.Identity != a.CanaryVersion && !(o.Identity == a.StableVersion && a.CanaryVersion == ""):
		t.close(Superseded, "replaced by "+orNone(a.CanaryVersion, a.StableVersion))
	}
}

func orNone(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// outcomeOf maps the planner's outcome to the revision's.
func (t *tracker) outcomeOf(r *Revision, planner string) (string, string) {
	failure := t.failure()
	by := t.by()
	switch planner {
	case "promoted":
		return Promoted, ""
	case "superseded":
		return Superseded, "replaced by a newer desired version"
	case "aborted":
		if failure != "" {
			return Failed, failure
		}
		return Aborted, "aborted" + by
	case "rolled-back":
		if r.Kind == KindRollback {
			return Promoted, "rolled back to " + r.Identity
		}
		if failure != "" {
			return Failed, failure + "; rolled back automatically"
		}
		return RolledBack, "rolled back" + by
	}
	return planner, ""
}

// failure is why graylane stopped a release in this pass ("" if it did
// not): a failed analysis or a progress deadline.
func (t *tracker) failure() string {
	for _, e := range t.p.Events {
		switch e.Reason {
		case "AnalysisFailed":
			return "analysis failed: " + e.Message
		case "ProgressDeadlineExceeded":
			return "progress deadline exceeded: " + e.Message
		}
	}
	if o := t.l.Open; o != nil && !o.FailedAt.IsZero() && o.Reason != "" {
		return o.Reason
	}
	return ""
}

func (t *tracker) by() string {
	if t.p.Command == "" {
		return ""
	}
	who := t.p.CommandBy
	if who == "" {
		who = "anonymous"
	}
	return " by " + who
}

// close gives the open revision its outcome.
func (t *tracker) close(outcome, reason string) {
	r := t.l.Open
	now := t.p.Now
	r.Outcome, r.EndedAt = outcome, now
	if reason != "" {
		r.Reason = clip(reason, maxReason)
	}
	if n := len(r.Steps); n > 0 && r.Steps[n-1].EndedAt.IsZero() {
		r.Steps[n-1].EndedAt = now
	}
	switch outcome {
	case Promoted:
		t.l.Serving = r.Number
		r.FailedAt = time.Time{}
	case Aborted, RolledBack, Failed:
		if r.FailedAt.IsZero() {
			r.FailedAt = now
		}
		cp := *r
		t.l.Restoring = &cp
	}
	t.touch(r)
	t.ch.Ended = append(t.ch.Ended, *r)
	t.l.Open = nil
}

// start opens a revision when a rollout (or the first release) starts.
func (t *tracker) start() {
	b, a := t.p.Before, t.p.After
	first := b.StableVersion == "" && a.StableVersion != ""
	starts := a.CanaryVersion != "" && a.CanaryVersion != b.CanaryVersion
	if !first && !starts {
		return
	}
	if t.l.Open != nil {
		t.close(Superseded, "replaced by "+orNone(a.CanaryVersion, a.StableVersion))
	}
	id := a.CanaryVersion
	if first && !starts {
		id = a.StableVersion
	}
	now := t.p.Now
	r := &Revision{Schema: SchemaVersion, App: t.p.App, Number: t.l.Last + 1, Kind: KindRelease, Identity: id,
		Version: spec.CodeVersion(id), Config: t.p.Config, Cause: t.p.Cause, Replaces: t.l.Serving,
		Strategy: t.strategy(), StartedAt: now, SeenAt: t.p.SeenAt}
	if r.SeenAt.IsZero() || r.SeenAt.After(now) {
		r.SeenAt = now
	}
	if first {
		r.Strategy = "none (first release)"
	}
	if a.Rollback {
		r.Kind, r.Fast = KindRollback, true
	}
	switch t.p.Command {
	case rollout.CmdRollback, rollout.CmdResume:
		// the command, not a new document, started this rollout
		r.Cause = Cause{Kind: CauseCommand, Actor: t.p.CommandBy, Via: t.p.CommandVia, Action: string(t.p.Command), Centre: t.p.Cause.Centre}
		r.SeenAt = now
	default:
		if t.p.Cause.RollbackTo > 0 && t.p.Identity == id {
			r.Kind, r.RollbackTo = KindRollback, t.p.Cause.RollbackTo
		}
	}
	if t.p.Spec != nil {
		r.SpecDigest, r.Spec = t.p.Spec.Hash(), t.p.SpecText
		r.SpecDiff = diffSpecs(t.l.Spec, r.Spec, t.l.Last)
	}
	if !r.Fast && !first {
		r.Steps = t.stepRecords(nil, -1, a.Step)
	}
	t.l.Last = r.Number
	t.l.Spec, t.l.SpecDigest = r.Spec, r.SpecDigest
	t.l.Open = r
	t.touch(r)
	t.ch.Started = append(t.ch.Started, *r)
}

func (t *tracker) strategy() string {
	if t.p.Spec == nil {
		return ""
	}
	return t.p.Spec.Strategy.Type
}

// progress follows the open revision's steps, verdicts and deadline.
func (t *tracker) progress() {
	r := t.l.Open
	a := t.p.After
	if r == nil || r.Identity != a.CanaryVersion {
		return
	}
	before := fmt.Sprint(r.Steps, r.Verdicts, r.FailedAt, r.Reason)
	if !r.Fast && (t.p.Before.CanaryVersion == r.Identity && t.p.Before.Step != a.Step) {
		r.Steps = t.stepRecords(r.Steps, t.p.Before.Step, a.Step)
	}
	r.Verdicts = verdicts(r.Verdicts, r.Identity, t.p.Checks)
	for _, e := range t.p.Events {
		if e.Reason == "ProgressDeadlineExceeded" && r.FailedAt.IsZero() {
			r.FailedAt, r.Reason = t.p.Now, clip("progress deadline exceeded: "+e.Message, maxReason)
		}
	}
	if fmt.Sprint(r.Steps, r.Verdicts, r.FailedAt, r.Reason) != before {
		t.touch(r)
	}
}

// stepRecords ends the step records before step to and opens one for to
// (when the strategy has such a step).
func (t *tracker) stepRecords(steps []StepRecord, from, to int) []StepRecord {
	now := t.p.Now
	out := append([]StepRecord(nil), steps...)
	for i := range out {
		if out[i].EndedAt.IsZero() && out[i].Index < to {
			out[i].EndedAt = now
		}
	}
	name := t.stepName(to)
	if name == "" || len(out) >= maxSteps {
		return out
	}
	for _, s := range out {
		if s.Index == to && s.EndedAt.IsZero() {
			return out
		}
	}
	return append(out, StepRecord{Index: to, Name: name, StartedAt: now})
}

// stepName names step i of the strategy ("" when there is none).
func (t *tracker) stepName(i int) string {
	if t.p.Spec == nil {
		return ""
	}
	st := t.p.Spec.Strategy
	switch st.Type {
	case spec.Canary:
		if i < 0 || i >= len(st.Steps) {
			return ""
		}
		s := st.Steps[i]
		switch {
		case s.SetWeight != nil:
			return fmt.Sprintf("setWeight %d", *s.SetWeight)
		case s.SetCanaryScale != nil:
			return "setCanaryScale"
		case s.Analysis != nil:
			return "analysis"
		case s.Pause != nil && s.Pause.Duration != nil:
			return "pause " + s.Pause.Duration.String()
		case s.Pause != nil:
			return "pause (until promoted)"
		}
	case spec.BlueGreen:
		switch i {
		case 0:
			return "bring up beside stable"
		case 1:
			return "preview"
		}
	case spec.Rolling:
		if i == 0 {
			return "rolling update"
		}
	}
	return ""
}

// verdicts summarises the analysis checks' runs against identity.
func verdicts(old []Verdict, identity string, checks map[string]rollout.CheckResult) []Verdict {
	if len(checks) == 0 {
		return old
	}
	byName := map[string]Verdict{}
	for _, v := range old {
		byName[v.Check] = v
	}
	for name, r := range checks {
		if r.Version != identity || len(r.Runs) == 0 {
			continue
		}
		v := Verdict{Check: name, Runs: len(r.Runs)}
		for _, run := range r.Runs {
			if !run.OK {
				v.Failures++
			}
		}
		last := r.Runs[len(r.Runs)-1]
		v.OK, v.Message, v.At = last.OK, clip(last.Message, 300), last.At
		if prev, ok := byName[name]; ok && prev.At.Equal(v.At) {
			continue
		}
		byName[name] = v
	}
	out := make([]Verdict, 0, len(byName))
	for _, v := range byName {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Check < out[j].Check })
	if len(out) > maxVerdicts {
		out = out[:maxVerdicts]
	}
	return out
}

// restore marks a failed revision restored once all traffic is back on
// the stable version.
func (t *tracker) restore() {
	r := t.l.Restoring
	if r == nil {
		return
	}
	obs, a := t.p.Observed, t.p.After
	back := false
	if obs.Router {
		back = obs.Split.Map()[a.StableVersion] == 100
	} else {
		back = obs.Versions[r.Identity].Ready == 0
	}
	if a.CanaryVersion == r.Identity {
		back = false // retried (resume)
	}
	if !back {
		return
	}
	r.RestoredAt = t.p.Now
	t.l.Restoring = nil
	t.touch(r)
	t.ch.Restored = append(t.ch.Restored, *r)
}

// newEntries returns the history entries the planner added in this pass,
// oldest first.
func newEntries(before, after []rollout.HistoryEntry) []rollout.HistoryEntry {
	var added []rollout.HistoryEntry
	for _, e := range after {
		if len(before) > 0 && e == before[0] {
			break
		}
		added = append(added, e)
	}
	if len(added) == len(after) && len(before) > 0 && len(after) > 0 && len(after) <= len(before) && after[len(after)-1] == before[len(before)-1] {
		return nil // nothing matched the newest but the tail is old: history unchanged
	}
	for i, j := 0, len(added)-1; i < j; i, j = i+1, j-1 {
		added[i], added[j] = added[j], added[i]
	}
	return added
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// diffSpecs is the unified diff from the previous revision's spec.
func diffSpecs(prev, next string, prevNumber int) string {
	if prev == "" || prev == next {
		return ""
	}
	return unified(fmt.Sprintf("revision %d", prevNumber), fmt.Sprintf("revision %d", prevNumber+1), prev, next)
}

// stripLines trims trailing blanks of every line (diff stability).
func stripLines(s string) string {
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = strings.TrimRight(l, " \t")
	}
	return strings.Join(ls, "\n")
}
