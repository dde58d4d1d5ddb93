package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/udiff"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// DryRunResult answers PUT /api/v1/apps/{app}?dryRun=true and PUT
// .../version?dryRun=true: what the change would do, with nothing written
// anywhere (the centre, graylane's etcd, config targets, the backend, the
// router; not even the audit log). An invalid change answers 400 with the
// same body, Valid false and every field error.
type DryRunResult struct {
	DryRun bool   `json:"dryRun"`
	App    string `json:"app"`
	Valid  bool   `json:"valid"`
	// Error and Field are the first problem (as in every error answer);
	// Errors lists all of them with their field paths.
	Error  string     `json:"error,omitempty"`
	Field  string     `json:"field,omitempty"`
	Errors []fieldMsg `json:"errors,omitempty"`
	// Centre is where the document would be written; DocumentVersion its
	// version there now ("" when the app has none yet).
	Centre          string `json:"centre"`
	DocumentVersion string `json:"documentVersion,omitempty"`
	// Diff is a unified diff from the document the centre holds to the
	// one that would be written ("" when they are the same).
	Diff string `json:"diff"`
	// Plan is how the release would move, step by step.
	Plan *PlanPreview `json:"plan,omitempty"`
	// Config is what would be written to each config target.
	Config *configrelease.Preview `json:"config,omitempty"`
	// Gray lists the gray documents the release would publish that route
	// differently from the one published now.
	Gray []GrayChange `json:"gray,omitempty"`
}

// PlanPreview is the planner's simulated course of the release.
type PlanPreview struct {
	// From is the version running now, To the release identity the
	// change asks for.
	From     string `json:"from,omitempty"`
	To       string `json:"to"`
	Strategy string `json:"strategy"`
	// Note explains a plan without steps (nothing changes, first release).
	Note  string            `json:"note,omitempty"`
	Steps []rollout.SimStep `json:"steps"`
}

// GrayChange is a gray document the release would publish.
type GrayChange struct {
	// At is the index in Plan.Steps where it would be published.
	At       int            `json:"at"`
	Document *gray.Document `json:"document"`
	// Diff is from the previously published document.
	Diff string `json:"diff"`
}

// dryRun reports whether the request asks for a dry-run (?dryRun=true);
// a value other than true or false is refused.
func (s *Server) dryRun(c *gin.Context) (bool, bool) {
	v, ok := c.GetQuery("dryRun")
	if !ok || v == "false" {
		return false, true
	}
	if v != "true" && v != "" {
		s.fail(c, &fieldErr{field: "query.dryRun", err: fmt.Errorf("%w: %q is not true or false", errBadRequest, v)})
		return false, false
	}
	note(c).skip = true // a dry-run writes nothing, not even an audit record
	s.log.Info("dry-run", "actor", actor(c), "method", c.Request.Method, "path", c.Request.URL.Path, "remote", c.ClientIP())
	return true, true
}

// preview answers a dry-run of writing doc as app's document.
func (s *Server) preview(c *gin.Context, app string, doc []byte) {
	ctx := c.Request.Context()
	out := DryRunResult{DryRun: true, App: app, Centre: s.cfg.Source.Name()}
	cur, err := s.cfg.Source.Get(ctx, app)
	switch {
	case err == nil:
		out.DocumentVersion = cur.Version
	case !errors.Is(err, configsync.ErrNotFound):
		s.fail(c, fmt.Errorf("read %s from %s: %w", app, s.cfg.Source.Name(), err))
		return
	}
	out.Diff = udiff.Unified(s.cfg.Source.Name()+" "+app, "request", string(cur.Data), string(doc), 0)
	rel, err := parseFor(app, doc) // spec.go
	view, verr := s.cfg.Engine.App(ctx, app)
	if verr != nil && !errors.Is(verr, engine.ErrNotFound) {
		s.fail(c, verr)
		return
	}
	identity := ""
	if err == nil && rel.Config != nil {
		if s.cfg.Config == nil {
			err = &spec.ValidationError{Errors: []spec.FieldError{{Path: "config", Msg: "config-in-step is not configured in this graylane"}}}
		} else {
			out.Config, err = s.cfg.Config.Preview(ctx, rel, view.Status.StableVersion)
			if out.Config != nil {
				identity = out.Config.Identity
			}
		}
	}
	if err != nil {
		var ve *spec.ValidationError
		if !errors.As(err, &ve) {
			s.fail(c, err)
			return
		}
		out.Error, out.Field, out.Errors = err.Error(), ve.Field(), fieldMsgs(err)
		c.JSON(http.StatusBadRequest, out)
		return
	}
	out.Valid = true
	if identity == "" {
		identity = rel.Version
	}
	out.Plan = plan(rel, identity, view)
	out.Gray = s.grayChanges(c, rel, out.Plan)
	c.JSON(http.StatusOK, out)
}

// plan simulates the release from the app's status with the pure planner.
func plan(rel *spec.Release, identity string, v engine.AppView) *PlanPreview {
	st := v.Status.Status
	p := &PlanPreview{From: st.StableVersion, To: identity, Strategy: rel.Strategy.Type}
	obs := rollout.Observed{Versions: map[string]rollout.Count{}, Router: rel.HasRouter()}
	for _, in := range v.Status.Instances {
		c := obs.Versions[in.Version]
		c.Total++
		if in.Ready {
			c.Ready++
		}
		obs.Versions[in.Version] = c
	}
	var ws []traffic.VersionWeight
	for ver, w := range st.Weights {
		ws = append(ws, traffic.VersionWeight{Version: ver, Weight: w})
	}
	obs.Split = traffic.New(ws...)
	switch {
	case st.StableVersion == "":
		p.Note = "first release: " + identity + " is deployed at full size at once, without the strategy"
	case identity == st.StableVersion && st.CanaryVersion == "":
		p.Note = identity + " already runs: the release would not move (other spec changes apply at the next pass)"
	}
	sim := rel.Clone()
	sim.Version = identity
	p.Steps = rollout.Simulate(sim, st, obs, time.Now(), false)
	return p
}

// grayChanges lists the gray documents a release routed by gray rules
// would publish along its plan.
func (s *Server) grayChanges(c *gin.Context, rel *spec.Release, p *PlanPreview) []GrayChange {
	if s.cfg.Gray == nil || !routesByGray(rel) {
		return nil
	}
	prev, err := s.cfg.Gray.Document(c.Request.Context(), rel.App)
	if err != nil {
		prev = nil
	}
	var out []GrayChange
	for i, st := range p.Steps {
		var ws []traffic.VersionWeight
		for v, w := range st.Weights {
			ws = append(ws, traffic.VersionWeight{Version: v, Weight: w})
		}
		sim := rel.Clone()
		sim.Version = p.To
		d := gray.Build(gray.BuildInput{Release: sim, Split: traffic.New(ws...), Desired: st.Replicas})
		if prev != nil && prev.SameRouting(&d) {
			continue
		}
		out = append(out, GrayChange{At: i, Document: &d, Diff: udiff.Unified("published", fmt.Sprintf("plan step %d", i), jsonText(prev), jsonText(&d), 200)})
		prev = &d
	}
	return out
}

func routesByGray(rel *spec.Release) bool {
	return (rel.Traffic != nil && rel.Traffic.Type == "gray") || rel.Backend.Type == spec.BackendRegistry
}

func jsonText(d *gray.Document) string {
	if d == nil {
		return ""
	}
	cp := *d
	cp.Generation, cp.PublishedAt = 0, ""
	b, _ := json.MarshalIndent(cp, "", "  ")
	return string(b) + "\n"
}
