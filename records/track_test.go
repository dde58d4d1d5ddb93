package records

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// sim drives the real planner (rollout.Plan) through releases, with
// instances that become ready at once and a router that confirms every
// split, and feeds each pass to Track as the engine does.
type sim struct {
	t       *testing.T
	rel     *spec.Release
	status  rollout.Status
	counts  map[string]rollout.Count
	split   traffic.Split
	now     time.Time
	log     Log
	written map[int]Revision
	cause   Cause
	ended   []string
}

const canary = `app: demo
version: v1
replicas: 2
strategy:
  steps: [{setWeight: 50}, {pause: {duration: 10s}}, {pause: {}}]
  scaleDownDelay: 1m
backend: {type: process, process: {command: [demoapp]}}
`

func newSim(t *testing.T) *sim {
	rel, err := spec.Parse([]byte(canary))
	if err != nil {
		t.Fatal(err)
	}
	return &sim{t: t, rel: rel, counts: map[string]rollout.Count{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		log: Log{Seeded: true}, written: map[int]Revision{}, cause: Cause{Kind: CauseAPI, Actor: "alice", Action: "set-version"}}
}

func (s *sim) pass(cmd rollout.Command, intent bool) {
	vs := map[string]rollout.Count{}
	for k, v := range s.counts {
		if v.Total > 0 {
			vs[k] = v
		}
	}
	obs := rollout.Observed{Versions: vs, Router: true, Split: s.split}
	d := rollout.Plan(rollout.Input{Spec: s.rel, Status: s.status, Observed: obs, Command: cmd, Now: s.now, RollbackIntent: intent})
	next, ch := Track(s.log, Pass{App: "demo", Now: s.now, SeenAt: s.now.Add(-time.Second), Before: s.status, After: d.Status,
		Events: d.Events, Spec: s.rel, SpecText: SpecText(s.rel), Identity: s.rel.Version, Cause: s.cause,
		Command: cmd, CommandBy: "bob", Observed: obs})
	for _, r := range ch.Write {
		s.written[r.Number] = r
	}
	for _, r := range ch.Ended {
		s.ended = append(s.ended, r.Outcome)
	}
	s.log = next
	s.status = d.Status
	for v, n := range d.Replicas {
		s.counts[v] = rollout.Count{Total: n, Ready: n}
	}
	if d.Split != nil {
		s.split = *d.Split
	}
}

// run passes until the status stops changing, a second apart.
func (s *sim) run(cmd rollout.Command, intent bool) {
	s.pass(cmd, intent)
	for i := 0; i < 30; i++ {
		before := s.status
		s.now = s.now.Add(time.Second)
		s.pass("", intent)
		if before.Phase == s.status.Phase && before.Step == s.status.Step && before.CanaryVersion == s.status.CanaryVersion &&
			before.Message == s.status.Message {
			return
		}
	}
}

func (s *sim) rev(n int) Revision {
	s.t.Helper()
	r, ok := s.written[n]
	if !ok {
		s.t.Fatalf("revision %d was never written (log %+v)", n, s.log)
	}
	return r
}

func TestTrackReleasesAbortAndRollbackToRevision(t *testing.T) {
	s := newSim(t)
	s.run("", false) // v1: first release
	s.rel.Version = "v2"
	s.run("", false) // canary to the indefinite pause
	if s.status.Phase != rollout.Paused {
		t.Fatalf("v2 not paused: %+v", s.status)
	}
	s.now = s.now.Add(time.Minute)
	s.run(rollout.CmdPromote, false)
	s.rel.Version = "v3"
	s.run("", false)
	s.run(rollout.CmdAbort, false)
	s.now = s.now.Add(2 * time.Minute) // v1 scaled away
	s.pass("", false)
	s.rel.Version = "v1"
	s.cause = Cause{Kind: CauseAPI, Actor: "carol", Action: "rollback", RollbackTo: 1}
	s.run("", true)

	if s.log.Last != 4 || s.log.Open != nil || s.log.Serving != 4 {
		t.Fatalf("log = last %d open %v serving %d, want 4, none, 4", s.log.Last, s.log.Open, s.log.Serving)
	}
	// the log names the release its Spec text is of: the engine reuses
	// the text as the base of the next document's diff
	if last := s.rev(4); s.log.SpecDigest == "" || s.log.SpecDigest != last.SpecDigest || s.log.Spec != last.Spec {
		t.Errorf("log spec digest %q, text %q; want revision 4's %q, %q", s.log.SpecDigest, s.log.Spec, last.SpecDigest, last.Spec)
	}
	want := []struct {
		kind, version, outcome string
		steps                  int
	}{
		{KindRelease, "v1", Promoted, 0},
		{KindRelease, "v2", Promoted, 3},
		{KindRelease, "v3", Aborted, 3},
		{KindRollback, "v1", Promoted, 0},
	}
	for i, w := range want {
		r := s.rev(i + 1)
		if r.Kind != w.kind || r.Version != w.version || r.Outcome != w.outcome || len(r.Steps) != w.steps {
			t.Errorf("revision %d = %s %s %s with %d steps, want %s %s %s with %d", i+1, r.Kind, r.Version, r.Outcome, len(r.Steps), w.kind, w.version, w.outcome, w.steps)
		}
		if r.EndedAt.IsZero() || r.EndedAt.Before(r.StartedAt) || r.Schema != SchemaVersion {
			t.Errorf("revision %d: started %s ended %s schema %d", i+1, r.StartedAt, r.EndedAt, r.Schema)
		}
	}
	v2 := s.rev(2)
	// steps: setWeight 50 (1 pass to scale + 1 to confirm), pause 10s, pause until promoted (1 minute)
	if v2.Steps[0].Name != "setWeight 50" || v2.Steps[2].Name != "pause (until promoted)" {
		t.Errorf("v2 steps = %+v", v2.Steps)
	}
	for i, st := range v2.Steps {
		if st.EndedAt.IsZero() || st.EndedAt.Before(st.StartedAt) {
			t.Errorf("v2 step %d not ended: %+v", i, st)
		}
	}
	if got := v2.Steps[1].EndedAt.Sub(v2.Steps[1].StartedAt); got != 10*time.Second {
		t.Errorf("pause 10s step took %s", got)
	}
	if got := v2.Steps[2].EndedAt.Sub(v2.Steps[2].StartedAt); got < time.Minute {
		t.Errorf("pause until promoted took %s, want at least the minute the sim waited", got)
	}
	if !strings.Contains(v2.SpecDiff, "-version: v1") || !strings.Contains(v2.SpecDiff, "+version: v2") {
		t.Errorf("v2 spec diff:\n%s", v2.SpecDiff)
	}
	if v2.Cause.Actor != "alice" || v2.Replaces != 1 || v2.SeenAt.After(v2.StartedAt) {
		t.Errorf("v2 cause %+v replaces %d seen %s started %s", v2.Cause, v2.Replaces, v2.SeenAt, v2.StartedAt)
	}
	v3 := s.rev(3)
	if v3.FailedAt.IsZero() || v3.RestoredAt.IsZero() || v3.RestoredAt.Before(v3.FailedAt) || !strings.Contains(v3.Reason, "aborted by bob") {
		t.Errorf("v3: failed %s restored %s reason %q", v3.FailedAt, v3.RestoredAt, v3.Reason)
	}
	rb := s.rev(4)
	if !rb.Fast || rb.RollbackTo != 1 || rb.Replaces != 2 || rb.Cause.Actor != "carol" {
		t.Errorf("rollback revision = %+v", rb)
	}
}

func TestTrackAdoptsARunningAppAndContinuesNumbering(t *testing.T) {
	s := newSim(t)
	s.run("", false)
	// records start now: a log that is new but seeded with 7 kept revisions
	s.log = Log{Seeded: true, Last: 7}
	s.rel.Version = "v2"
	s.run("", false)
	if s.log.Open == nil || s.log.Open.Number != 8 || s.log.Open.Replaces != 0 {
		t.Fatalf("open = %+v", s.log.Open)
	}
	s.log = Log{Seeded: true}
	s.status.CanaryVersion = "" // as after a promotion, before records
	s.status.StableVersion = "v2"
	s.pass("", false)
	r := s.rev(1)
	if r.Kind != KindAdopted || r.Version != "v2" || r.Outcome != Promoted || s.log.Serving != 1 {
		t.Errorf("adopted = %+v, serving %d", r, s.log.Serving)
	}
}

func TestTrackSupersededAndFailedByDeadline(t *testing.T) {
	s := newSim(t)
	s.rel.Strategy.AutoRollback = true
	d := spec.Duration{Duration: 30 * time.Second}
	s.rel.Strategy.ProgressDeadline = &d
	s.run("", false)
	s.rel.Version = "v2"
	s.run("", false)
	s.rel.Version = "v3"
	s.run("", false)
	if r := s.rev(2); r.Outcome != Superseded {
		t.Errorf("v2 = %s, want superseded", r.Outcome)
	}
	// v3 hangs at its first step: the deadline rolls it back
	s.counts["v4"] = rollout.Count{}
	s.rel.Version = "v4"
	s.pass("", false)
	for i := 0; i < 40; i++ {
		s.now = s.now.Add(time.Second)
		s.counts["v4"] = rollout.Count{Total: s.counts["v4"].Total} // never ready
		s.pass("", false)
	}
	r := s.rev(4)
	if r.Outcome != Failed || !strings.Contains(r.Reason, "progress deadline") || !strings.Contains(r.Reason, "rolled back automatically") {
		t.Errorf("v4 = %s (%s), want failed by the deadline", r.Outcome, r.Reason)
	}
}

func TestSchemaNewerIsRefused(t *testing.T) {
	if err := CheckSchema("revision 3 of demo", SchemaVersion+1); !errors.Is(err, schema.ErrNewer) || !strings.Contains(err.Error(), "revision 3 of demo has schema version 2") {
		t.Fatalf("err = %v", err)
	}
	if err := CheckSchema("x", SchemaVersion); err != nil {
		t.Fatal(err)
	}
}
