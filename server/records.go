package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/records"
)

// RecordsService is what the release-records routes need (records.Store):
// revisions, release summaries and the intents the API records before it
// writes a document.
type RecordsService interface {
	// Revisions lists an app's kept revisions, newest first.
	Revisions(ctx context.Context, app string) ([]records.Revision, error)
	// Revision returns one, or an error wrapping records.ErrNotFound.
	Revision(ctx context.Context, app string, n int) (records.Revision, error)
	// Summaries returns the releases started since t, oldest first.
	Summaries(ctx context.Context, since time.Time) ([]records.Summary, error)
	// PutIntent records who is about to write a document, and why.
	PutIntent(ctx context.Context, in records.Intent) error
	// DeleteIntent removes the intent of a write that failed.
	DeleteIntent(ctx context.Context, app, digest string) error
}

var errRecordsOff = errors.New("release records are not configured in this graylane")

// recordsRoutes registers the release-records routes:
//
//	GET  /apps/{app}/revisions        the app's revisions, newest first (without spec texts)
//	GET  /apps/{app}/revisions/{n}    one revision with its spec and spec diff
//	GET  /apps/{app}/stats            the app's release statistics, 7 and 30 days
//	GET  /stats                       every app's, and all together
//
// POST /apps/{app}/rollback with a revision or version is rollback.go.
func (s *Server) recordsRoutes(v1 *gin.RouterGroup) {
	read := s.authenticate(RoleRead)
	v1.GET("/apps/:app/revisions", read, s.listRevisions)
	v1.GET("/apps/:app/revisions/:n", read, s.getRevision)
	v1.GET("/apps/:app/stats", read, s.appStats)
	v1.GET("/stats", read, s.allStats)
}

func (s *Server) recordsService(c *gin.Context) (RecordsService, bool) {
	if s.cfg.Records == nil {
		c.AbortWithStatusJSON(http.StatusNotImplemented, apiError{Error: errRecordsOff.Error()})
		return nil, false
	}
	return s.cfg.Records, true
}

// RevisionList is GET /api/v1/apps/{app}/revisions.
type RevisionList struct {
	App string `json:"app"`
	// Keep is how many revisions are kept per app.
	Revisions []records.Revision `json:"revisions"`
}

func (s *Server) listRevisions(c *gin.Context) {
	rs, ok := s.recordsService(c)
	if !ok {
		return
	}
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	revs, err := rs.Revisions(c.Request.Context(), app)
	if err != nil {
		s.fail(c, fmt.Errorf("revisions of %s: %w", app, err))
		return
	}
	for i := range revs {
		revs[i].Spec, revs[i].SpecDiff = "", ""
	}
	c.JSON(http.StatusOK, RevisionList{App: app, Revisions: revs})
}

func (s *Server) getRevision(c *gin.Context) {
	rs, ok := s.recordsService(c)
	if !ok {
		return
	}
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil || n < 1 {
		s.fail(c, &fieldErr{field: "n", err: fmt.Errorf("%w: %q is not a revision number (1, 2, ...)", errBadRequest, c.Param("n"))})
		return
	}
	r, err := rs.Revision(c.Request.Context(), app, n)
	if errors.Is(err, records.ErrNotFound) {
		err = fmt.Errorf("%w: %w", configsync.ErrNotFound, err)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// AppStats is GET /api/v1/apps/{app}/stats: one Stats per window.
type AppStats struct {
	App     string                   `json:"app"`
	Windows map[string]records.Stats `json:"windows"`
}

// AllStats is GET /api/v1/stats: every app together (All) and each app
// with releases in the longest window (Apps), per window.
type AllStats struct {
	Windows map[string]WindowStats `json:"windows"`
}

// WindowStats is one window of AllStats.
type WindowStats struct {
	All  records.Stats            `json:"all"`
	Apps map[string]records.Stats `json:"apps"`
}

func (s *Server) summaries(c *gin.Context) ([]records.Summary, time.Time, bool) {
	rs, ok := s.recordsService(c)
	if !ok {
		return nil, time.Time{}, false
	}
	now := time.Now()
	longest := records.Windows[len(records.Windows)-1].Span
	sums, err := rs.Summaries(c.Request.Context(), now.Add(-longest))
	if err != nil {
		s.fail(c, fmt.Errorf("release summaries: %w", err))
		return nil, now, false
	}
	return sums, now, true
}

func (s *Server) appStats(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	sums, now, ok := s.summaries(c)
	if !ok {
		return
	}
	out := AppStats{App: app, Windows: map[string]records.Stats{}}
	for _, w := range records.Windows {
		out.Windows[w.Name] = records.Compute(sums, app, now, w)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) allStats(c *gin.Context) {
	sums, now, ok := s.summaries(c)
	if !ok {
		return
	}
	apps := map[string]bool{}
	for _, x := range sums {
		apps[x.App] = true
	}
	names := make([]string, 0, len(apps))
	for a := range apps {
		names = append(names, a)
	}
	sort.Strings(names)
	out := AllStats{Windows: map[string]WindowStats{}}
	for _, w := range records.Windows {
		ws := WindowStats{All: records.Compute(sums, "", now, w), Apps: map[string]records.Stats{}}
		for _, a := range names {
			if st := records.Compute(sums, a, now, w); st.Started > 0 {
				ws.Apps[a] = st
			}
		}
		out.Windows[w.Name] = ws
	}
	c.JSON(http.StatusOK, out)
}

// intent records who is about to write data for app, before the write:
// the engine finds it by the document's digest and names the caller in
// the revision (and takes the fast path for a rollback). It returns a
// function that removes the intent if the write fails. Without records
// configured it does nothing.
func (s *Server) intent(c *gin.Context, app string, data []byte, action string, rollbackTo int, version string) (func(), error) {
	rs := s.cfg.Records
	if rs == nil {
		return func() {}, nil
	}
	d := records.DocumentDigest(data)
	err := rs.PutIntent(c.Request.Context(), records.Intent{App: app, Digest: d, Actor: actor(c), Via: via(c), Action: action,
		RollbackTo: rollbackTo, Version: version, At: time.Now()})
	if err != nil {
		return nil, fmt.Errorf("record the intent to write %s: %w: %w", app, configsync.ErrUnavailable, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rs.DeleteIntent(ctx, app, d); err != nil {
			s.log.Warn("remove the intent of a failed write", "app", app, "err", err)
		}
	}, nil
}
