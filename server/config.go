package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/redact"
	"github.com/graylane/graylane/spec"
)

// ConfigService is what the config routes need (configrelease.Manager).
type ConfigService interface {
	// View is an app's config status (nil before its first pass).
	View(app string) *configrelease.View
	// History lists an app's config versions, newest first.
	History(ctx context.Context, app string) ([]configrelease.HistoryEntry, error)
	// Entry returns one config version (ok false when unknown).
	Entry(ctx context.Context, app, identity string) (configrelease.HistoryEntry, bool, error)
	// Resolve validates a release's config section, reading its
	// referenced files, and returns the bundle; it writes nothing.
	Resolve(ctx context.Context, rel *spec.Release) (configrelease.Bundle, error)
	// Preview says what releasing rel would write to each config target,
	// with diffs against what they hold; it writes nothing. stable is the
	// identity running now.
	Preview(ctx context.Context, rel *spec.Release, stable string) (*configrelease.Preview, error)
}

var errConfigOff = errors.New("config-in-step is not configured in this graylane")

// configRoutes registers the config-in-step routes (read-only):
//
//	GET /apps/{app}/config                              what each target holds, the gate, drift
//	GET /apps/{app}/config/history                      every config version, newest first (no content)
//	GET /apps/{app}/config/history/{identity}           one version with its files
//	GET /apps/{app}/config/history/{identity}/files/{name}  one file, raw
func (s *Server) configRoutes(v1 *gin.RouterGroup) {
	read := s.authenticate(RoleRead)
	v1.GET("/apps/:app/config", read, s.getConfig)
	v1.GET("/apps/:app/config/history", read, s.configHistory)
	v1.GET("/apps/:app/config/history/:identity", read, s.configVersion)
	v1.GET("/apps/:app/config/history/:identity/files/:name", read, s.configFile)
}

func (s *Server) configService(c *gin.Context) (ConfigService, string, bool) {
	if s.cfg.Config == nil {
		c.AbortWithStatusJSON(http.StatusNotImplemented, apiError{Error: errConfigOff.Error()})
		return nil, "", false
	}
	app, ok := s.checkApp(c)
	return s.cfg.Config, app, ok
}

// getConfig answers the app's config status: the layout (which release
// identity's config the stable locations and the version-bound copies
// hold), every placement with what it should hold and whether it was read
// back, the gate the planner sees, the pending write and any drift.
func (s *Server) getConfig(c *gin.Context) {
	svc, app, ok := s.configService(c)
	if !ok {
		return
	}
	v, err := s.cfg.Engine.App(c.Request.Context(), app)
	if err != nil {
		s.fail(c, err)
		return
	}
	if v.Spec == nil || v.Spec.Config == nil {
		s.fail(c, fmt.Errorf("app %s has no config section: %w", app, configsync.ErrNotFound))
		return
	}
	c.JSON(http.StatusOK, gin.H{"app": app, "config": svc.View(app), "instances": v.Status.Instances})
}

// historyItem is a config version without its contents.
type historyItem struct {
	Identity string                       `json:"identity"`
	Version  string                       `json:"version"`
	Digest   string                       `json:"digest"`
	Files    []historyFile                `json:"files"`
	BoundAt  string                       `json:"boundAt"`
	Events   []configrelease.HistoryEvent `json:"events,omitempty"`
}

type historyFile struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	SHA256 string `json:"sha256"`
	Bytes  int    `json:"bytes"`
}

func (s *Server) configHistory(c *gin.Context) {
	svc, app, ok := s.configService(c)
	if !ok {
		return
	}
	hist, err := svc.History(c.Request.Context(), app)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]historyItem, 0, len(hist))
	for _, e := range hist {
		it := historyItem{Identity: e.Identity, Version: e.Version, Digest: e.Bundle.Digest, BoundAt: e.BoundAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Events: e.Events}
		for _, f := range e.Bundle.Files {
			it.Files = append(it.Files, historyFile{Name: f.Name, Format: f.Format, SHA256: f.SHA256, Bytes: len(f.Content)})
		}
		out = append(out, it)
	}
	c.JSON(http.StatusOK, gin.H{"app": app, "history": out})
}

func (s *Server) entry(c *gin.Context) (configrelease.HistoryEntry, bool) {
	svc, app, ok := s.configService(c)
	if !ok {
		return configrelease.HistoryEntry{}, false
	}
	e, found, err := svc.Entry(c.Request.Context(), app, c.Param("identity"))
	if err == nil && !found {
		err = fmt.Errorf("app %s has no config version %q: %w", app, c.Param("identity"), configsync.ErrNotFound)
	}
	if err != nil {
		s.fail(c, err)
		return configrelease.HistoryEntry{}, false
	}
	return e, true
}

func (s *Server) configVersion(c *gin.Context) {
	if e, ok := s.entry(c); ok {
		if !canWrite(c) {
			e.Bundle.Files = append([]configwire.File(nil), e.Bundle.Files...)
			for i := range e.Bundle.Files {
				f := &e.Bundle.Files[i]
				f.Content = redact.Text(f.Format, f.Content, s.secrets(c, e.App, f.Name)...)
			}
		}
		c.JSON(http.StatusOK, e)
	}
}

// secrets are the keys the app's spec marks secret in a config file.
func (s *Server) secrets(c *gin.Context, app, file string) []string {
	v, err := s.cfg.Engine.App(c.Request.Context(), app)
	if err != nil || v.Spec == nil || v.Spec.Config == nil {
		return nil
	}
	for _, f := range v.Spec.Config.Files {
		if f.Name == file {
			return f.Secrets
		}
	}
	return nil
}

func (s *Server) configFile(c *gin.Context) {
	e, ok := s.entry(c)
	if !ok {
		return
	}
	f := e.Bundle.File(c.Param("name"))
	if f == nil {
		s.fail(c, fmt.Errorf("config version %s of %s has no file %q: %w", e.Identity, e.App, c.Param("name"), configsync.ErrNotFound))
		return
	}
	c.Header("X-Config-SHA256", f.SHA256)
	content := f.Content
	if !canWrite(c) {
		// readers without a write token see secrets redacted; the digest
		// stays that of the file as released
		content = redact.Text(f.Format, f.Content, s.secrets(c, e.App, f.Name)...)
		c.Header("X-Config-Redacted", "true")
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(content))
}
