package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// cli runs the graylane binary as a user would and returns its output and
// exit code.
func cli(t *testing.T, g *graylanetest.Graylane, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(g.Bin, "graylane"), append([]string{"--server", g.APIURL}, args...)...)
	cmd.Dir = g.Dir
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("graylane %v: %v", args, err)
	}
	return string(out), code
}

// TestEndToEndRollbackToRevision: real processes behind the built-in
// proxy, config bound on etcd, Nacos (Polaris) and Apollo. Three releases
// v1 → v2 → v3, v3 aborted, then `graylane rollback --to-revision 1`:
// code and config in every target are back on v1's pair, the centre says
// v1, no canary step ran, and the history shows four revisions with the
// right outcomes and times. The release statistics and Prometheus
// counters then equal what this test computes from what it did.
func TestEndToEndRollbackToRevision(t *testing.T) {
	testenv.IntegrationTest(t)
	e := newConfigEnv(t)
	c := e.g.Client()
	ctx := context.Background()
	mark := func() time.Time { return time.Now() }

	// v1: first release
	putV1 := mark()
	e.put(e.spec("v1", "one", "report"))
	waitFor(t, e.g, "demo", 90*time.Second, "v1 healthy on its config", func(v engine.AppView) bool {
		return healthyAt("v1")(v) && allReport(map[string]string{"v1": digest("one")}, map[string]int{"v1": 2})(v)
	})
	healthyV1 := mark()

	// v2: canary to its pause, promoted
	putV2 := mark()
	e.put(e.spec("v2", "two", "report"))
	waitFor(t, e.g, "demo", 90*time.Second, "v2 paused", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.CanaryVersion == "v2"
	})
	promoteV2 := mark()
	e.command(rollout.CmdPromote)
	waitFor(t, e.g, "demo", 90*time.Second, "v2 healthy", func(v engine.AppView) bool {
		return healthyAt("v2")(v) && allReport(map[string]string{"v2": digest("two"), "v1": digest("two")}, map[string]int{"v2": 2})(v)
	})
	healthyV2 := mark()

	// v3: canary to its pause, aborted
	putV3 := mark()
	e.put(e.spec("v3", "three", "report"))
	waitFor(t, e.g, "demo", 90*time.Second, "v3 paused", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.CanaryVersion == "v3"
	})
	abortV3 := mark()
	e.command(rollout.CmdAbort)
	waitFor(t, e.g, "demo", 90*time.Second, "v3 aborted, v2 serving", func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Degraded && v.Status.StableVersion == "v2" && v.Status.CanaryVersion == "" && v.Status.Weights["v2"] == 100
	})
	abortedV3 := mark()

	// rollback to revision 1, through the CLI, following the rollout
	rollbackAt := mark()
	out, code := cli(t, e.g, "rollback", "demo", "--to-revision", "1", "--wait", "--timeout", "90s")
	if code != 0 || !strings.Contains(out, "rolling back to revision 1 (v1 with config v1)") || !strings.Contains(out, "v1 is Healthy") {
		t.Fatalf("graylane rollback --to-revision 1: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "StepCompleted") || strings.Contains(out, "RolloutStarted") {
		t.Fatalf("the rollback ran canary steps:\n%s", out)
	}
	v := waitFor(t, e.g, "demo", 90*time.Second, "v1 healthy on v1's config", func(v engine.AppView) bool {
		return healthyAt("v1")(v) && v.Status.Weights["v1"] == 100 &&
			allReport(map[string]string{"v1": digest("one"), "v2": digest("one")}, map[string]int{"v1": 2})(v)
	})
	restored := mark()
	t.Logf("rollback to revision 1 (v1 still running within scaleDownDelay): request → v1 healthy with its config in %s", restored.Sub(rollbackAt).Round(time.Millisecond))
	if v.Spec == nil || v.Spec.Version != "v1" || v.Spec.Config == nil || *v.Spec.Config.Files[0].Content != content("one") {
		t.Fatalf("the spec in force is not v1's pair: %+v", v.Spec)
	}
	// the centre says v1, with v1's config; every config target holds v1's
	doc := e.etcd("/graylane/apps/demo")
	if !strings.Contains(doc, "version: v1") || !strings.Contains(doc, "greeting: one") || !strings.Contains(doc, "steps: [{setWeight: 50}, {pause: {}}]") {
		t.Fatalf("the centre's document after the rollback:\n%s", doc)
	}
	e.eventually("v1's config everywhere", "v2", centres{etcd: content("one"), nacos: content("one"), apollo: content("one"), apolloGray: content("one")})

	// four revisions, outcomes, steps and times as this test saw them
	revs, err := c.Revisions(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range revs {
		rows = append(rows, fmt.Sprintf("%d %s %s %s %d", r.Number, r.Kind, r.Version, r.Outcome, len(r.Steps)))
	}
	if got := strings.Join(rows, " | "); got != "4 rollback v1 promoted 0 | 3 release v3 aborted 2 | 2 release v2 promoted 2 | 1 release v1 promoted 0" {
		t.Fatalf("history: %s", got)
	}
	r1, r2, r3, r4 := revs[3], revs[2], revs[1], revs[0]
	within := func(name string, at, from, to time.Time) {
		t.Helper()
		if at.Before(from) || at.After(to) {
			t.Errorf("%s at %s, want between %s and %s", name, at.Format(time.StampMilli), from.Format(time.StampMilli), to.Format(time.StampMilli))
		}
	}
	within("revision 1 seen", r1.SeenAt, putV1, healthyV1)
	within("revision 1 ended", r1.EndedAt, putV1, healthyV1)
	within("revision 2 seen", r2.SeenAt, putV2, promoteV2)
	within("revision 2 ended", r2.EndedAt, promoteV2, healthyV2)
	within("revision 2 pause step ended", r2.Steps[1].EndedAt, promoteV2, healthyV2)
	within("revision 3 seen", r3.SeenAt, putV3, abortV3)
	within("revision 3 ended", r3.EndedAt, abortV3, abortedV3)
	within("revision 4 seen", r4.SeenAt, rollbackAt, restored)
	within("revision 4 ended", r4.EndedAt, rollbackAt, restored)
	if r3.RestoredAt.IsZero() || r3.RestoredAt.Before(r3.FailedAt) || r3.RestoredAt.After(r4.StartedAt) {
		t.Errorf("revision 3: failed %s, restored %s", r3.FailedAt, r3.RestoredAt)
	}
	if !r4.Fast || r4.RollbackTo != 1 || r4.Replaces != 2 || r4.Cause.Action != "rollback" || r4.Cause.RollbackTo != 1 {
		t.Errorf("revision 4: %+v", r4)
	}
	for _, r := range []struct {
		rev   records.Revision
		greet string
	}{{r1, "one"}, {r2, "two"}, {r3, "three"}, {r4, "one"}} {
		if r.rev.Config == nil || r.rev.Config.Digest != digest(r.greet) {
			t.Errorf("revision %d: bound config %+v, want the digest of %q", r.rev.Number, r.rev.Config, r.greet)
		}
		if r.rev.Cause.Kind != records.CauseAPI || r.rev.Cause.Actor != "anonymous" {
			t.Errorf("revision %d: cause %+v", r.rev.Number, r.rev.Cause)
		}
	}
	full, err := c.Revision(ctx, "demo", 2)
	if err != nil || !strings.Contains(full.SpecDiff, "-version: v1") || !strings.Contains(full.SpecDiff, "+version: v2") || strings.Contains(full.Spec, "greeting: two") {
		t.Errorf("revision 2's spec diff (config contents must not be in it): %v\n%s\n%s", err, full.SpecDiff, full.Spec)
	}
	hist, code := cli(t, e.g, "history", "demo")
	if code != 0 || !strings.Contains(hist, "promoted (rollback to #1)") || !strings.Contains(hist, "aborted") {
		t.Errorf("graylane history demo: exit %d\n%s", code, hist)
	}

	checkStats(t, e.g, revs)
}

// checkStats compares the statistics graylane serves (API and Prometheus)
// with what the test computes from the revisions: 3 releases finished
// (v1, v2 promoted; v3 aborted), v2 then replaced by the rollback.
func checkStats(t *testing.T, g *graylanetest.Graylane, revs []records.Revision) {
	t.Helper()
	var lead, restore []float64
	for _, r := range revs {
		switch {
		case r.Kind == records.KindRelease && r.Outcome == records.Promoted:
			lead = append(lead, r.EndedAt.Sub(r.SeenAt).Seconds())
		case r.Kind == records.KindRelease && r.Outcome == records.Aborted:
			restore = append(restore, r.RestoredAt.Sub(r.FailedAt).Seconds())
		case r.Kind == records.KindRollback:
			restore = append(restore, r.EndedAt.Sub(r.SeenAt).Seconds())
		}
	}
	sort.Float64s(lead)
	sort.Float64s(restore)
	// nearest rank: median of 2 is the first, p90 of 2 the second
	st, err := g.Client().AppStats(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"7d", "30d"} {
		s := st.Windows[w]
		if s.Started != 4 || s.Promoted != 3 || s.Aborted != 1 || s.RolledBack != 1 || s.Failed != 0 || s.Rollbacks != 1 || s.InProgress != 0 {
			t.Errorf("%s counts: %+v", w, s)
		}
		// failures: v3 aborted and v2 replaced by a rollback, of 3 finished releases
		if s.ChangeFailureRate != 0.667 {
			t.Errorf("%s change failure rate %v, want 0.667", w, s.ChangeFailureRate)
		}
		near := func(name string, got, want float64) {
			if d := got - want; d > 0.002 || d < -0.002 {
				t.Errorf("%s %s = %.3f s, computed %.3f s", w, name, got, want)
			}
		}
		if s.LeadTime.Count != 2 || s.TimeToRestore.Count != 2 {
			t.Fatalf("%s: lead %+v restore %+v", w, s.LeadTime, s.TimeToRestore)
		}
		near("lead time median", s.LeadTime.Median, lead[0])
		near("lead time p90", s.LeadTime.P90, lead[1])
		near("time to restore median", s.TimeToRestore.Median, restore[0])
		near("time to restore p90", s.TimeToRestore.P90, restore[1])
	}
	out, code := cli(t, g, "stats", "demo")
	if code != 0 || !strings.Contains(out, "66.7%") {
		t.Errorf("graylane stats demo: %d\n%s", code, out)
	}
	// Prometheus: the same counts
	resp, err := http.Get(g.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for series, want := range map[string]int{
		`graylane_releases_started_total{env="default",kind="release"}`:   3,
		`graylane_releases_started_total{env="default",kind="rollback"}`:  1,
		`graylane_releases_ended_total{env="default",outcome="promoted"}`: 3,
		`graylane_releases_ended_total{env="default",outcome="aborted"}`:  1,
		`graylane_release_lead_time_seconds_count{env="default"}`:         2,
		`graylane_release_time_to_restore_seconds_count{env="default"}`:   2,
	} {
		m := regexp.MustCompile(regexp.QuoteMeta(series) + ` (\d+)`).FindSubmatch(b)
		if m == nil {
			t.Errorf("/metrics has no %s", series)
			continue
		}
		if n, _ := strconv.Atoi(string(m[1])); n != want {
			t.Errorf("%s = %d, want %d", series, n, want)
		}
	}
}
