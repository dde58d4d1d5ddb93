package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/spec"
)

// GrayService is what the gray routes need: the published gray documents
// and the instance registry (cmd/graylane wires the gray router and the
// etcd registry). Errors wrap configsync's sentinels.
type GrayService interface {
	// Document returns app's published gray document.
	Document(ctx context.Context, app string) (*gray.Document, error)
	// Register registers in; the caller renews it with Heartbeat more
	// often than ttl.
	Register(ctx context.Context, in gray.Instance, ttl time.Duration) (gray.Instance, error)
	// Heartbeat renews a registration; configsync.ErrNotFound when it
	// expired (register again).
	Heartbeat(ctx context.Context, app, id string) (gray.Instance, error)
	// Deregister removes an instance; a missing one is not an error.
	Deregister(ctx context.Context, app, id string) error
	// Instances lists registered instances ("" for every app).
	Instances(ctx context.Context, app string) ([]gray.Instance, error)
}

// Registration TTLs of POST /api/v1/instances.
const (
	DefaultInstanceTTL = 15 * time.Second
	MinInstanceTTL     = 2 * time.Second
	MaxInstanceTTL     = 10 * time.Minute
)

var errGrayOff = errors.New("gray routing is not configured in this graylane")

// grayRoutes registers the gray document and instance registry routes.
// Registering, renewing and removing an instance changes where traffic
// goes, so it needs a write token (when tokens are configured).
func (s *Server) grayRoutes(v1 *gin.RouterGroup) {
	read, write := s.authenticate(RoleRead), s.authenticate(RoleWrite)
	v1.GET("/apps/:app/gray", read, s.getGray)
	v1.GET("/apps/:app/instances", read, s.appInstances)
	v1.GET("/instances", read, s.listInstances)
	v1.POST("/instances", write, s.registerInstance)
	v1.POST("/instances/:app/:id/heartbeat", write, s.heartbeat)
	v1.DELETE("/instances/:app/:id", write, s.deregister)
}

func (s *Server) gray(c *gin.Context) (GrayService, bool) {
	if s.cfg.Gray == nil {
		c.AbortWithStatusJSON(http.StatusNotImplemented, apiError{Error: errGrayOff.Error()})
		return nil, false
	}
	return s.cfg.Gray, true
}

// getGray answers the app's published gray document, exactly the format
// gateways read from the centre (docs/gray.md).
func (s *Server) getGray(c *gin.Context) {
	g, ok := s.gray(c)
	if !ok {
		return
	}
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	d, err := g.Document(c.Request.Context(), app)
	if err != nil {
		s.fail(c, fmt.Errorf("gray document of %s: %w", app, err))
		return
	}
	c.JSON(http.StatusOK, d)
}

// InstancesView is GET /api/v1/apps/{app}/instances: registered instances
// per version.
type InstancesView struct {
	App      string                     `json:"app"`
	Versions map[string][]gray.Instance `json:"versions"`
}

func (s *Server) appInstances(c *gin.Context) {
	g, ok := s.gray(c)
	if !ok {
		return
	}
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	list, err := g.Instances(c.Request.Context(), app)
	if err != nil {
		s.fail(c, fmt.Errorf("instances of %s: %w", app, err))
		return
	}
	v := InstancesView{App: app, Versions: map[string][]gray.Instance{}}
	for _, in := range list {
		v.Versions[in.Version] = append(v.Versions[in.Version], in)
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) listInstances(c *gin.Context) {
	g, ok := s.gray(c)
	if !ok {
		return
	}
	app := c.Query("app")
	if app != "" {
		if err := spec.CheckApp(app); err != nil {
			s.fail(c, &fieldErr{field: "app", err: fmt.Errorf("%w: %v", errBadRequest, err)})
			return
		}
	}
	list, err := g.Instances(c.Request.Context(), app)
	if err != nil {
		s.fail(c, fmt.Errorf("list instances: %w", err))
		return
	}
	if list == nil {
		list = []gray.Instance{}
	}
	c.JSON(http.StatusOK, gin.H{"instances": list})
}

// RegisterRequest is the body of POST /api/v1/instances.
type RegisterRequest struct {
	App     string `json:"app"`
	Version string `json:"version"`
	// ID defaults to Addr.
	ID   string `json:"id,omitempty"`
	Addr string `json:"addr"`
	// Ready defaults to true.
	Ready *bool             `json:"ready,omitempty"`
	Meta  map[string]string `json:"meta,omitempty"`
	// TTL: the registration expires unless renewed within it (default
	// 15s, 2s..10m).
	TTL *spec.Duration `json:"ttl,omitempty"`
}

// RegisterResponse answers a registration: heartbeat at Heartbeat every
// HeartbeatEvery (a third of the TTL).
type RegisterResponse struct {
	Instance       gray.Instance `json:"instance"`
	TTL            spec.Duration `json:"ttl"`
	Heartbeat      string        `json:"heartbeat"`
	HeartbeatEvery spec.Duration `json:"heartbeatEvery"`
}

func (s *Server) registerInstance(c *gin.Context) {
	g, ok := s.gray(c)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, 64<<10))
	if err != nil {
		s.fail(c, fmt.Errorf("%w: read body: %v", errBadRequest, err))
		return
	}
	var req RegisterRequest
	if err := spec.DecodeStrict(body, &req); err != nil {
		s.fail(c, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	}
	in := gray.Instance{App: req.App, Version: req.Version, ID: req.ID, Addr: req.Addr, Ready: req.Ready == nil || *req.Ready, Meta: req.Meta}
	if in.ID == "" {
		in.ID = in.Addr
	}
	if err := in.Check(); err != nil {
		s.fail(c, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	}
	ttl := DefaultInstanceTTL
	if req.TTL != nil {
		ttl = req.TTL.Duration
	}
	if ttl < MinInstanceTTL || ttl > MaxInstanceTTL {
		s.fail(c, &fieldErr{field: "ttl", err: fmt.Errorf("%w: %s is outside %s..%s", errBadRequest, ttl, MinInstanceTTL, MaxInstanceTTL)})
		return
	}
	out, err := g.Register(c.Request.Context(), in, ttl)
	s.audit(c, in.App, fmt.Sprintf("register instance %s (%s at %s, ttl %s)", in.ID, in.Version, in.Addr, ttl), err)
	if err != nil {
		s.fail(c, fmt.Errorf("register %s of %s: %w", in.ID, in.App, err))
		return
	}
	s.log.Info("instance registered", "app", out.App, "version", out.Version, "id", out.ID, "addr", out.Addr, "ttl", ttl)
	c.JSON(http.StatusCreated, RegisterResponse{
		Instance: out, TTL: spec.Duration{Duration: ttl},
		Heartbeat:      "/api/v1/instances/" + out.App + "/" + out.ID + "/heartbeat",
		HeartbeatEvery: spec.Duration{Duration: ttl / 3},
	})
}

func (s *Server) instanceParams(c *gin.Context) (app, id string, ok bool) {
	app, ok = s.checkApp(c)
	if !ok {
		return "", "", false
	}
	id = c.Param("id")
	if !gray.IDPattern.MatchString(id) {
		s.fail(c, &fieldErr{field: "id", err: fmt.Errorf("%w: %q is not an instance ID", errBadRequest, id)})
		return "", "", false
	}
	return app, id, true
}

func (s *Server) heartbeat(c *gin.Context) {
	g, ok := s.gray(c)
	if !ok {
		return
	}
	app, id, ok := s.instanceParams(c)
	if !ok {
		return
	}
	in, err := g.Heartbeat(c.Request.Context(), app, id)
	if err != nil {
		s.fail(c, fmt.Errorf("heartbeat of %s of %s: %w", id, app, err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"instance": in})
}

func (s *Server) deregister(c *gin.Context) {
	g, ok := s.gray(c)
	if !ok {
		return
	}
	app, id, ok := s.instanceParams(c)
	if !ok {
		return
	}
	err := g.Deregister(c.Request.Context(), app, id)
	s.audit(c, app, "deregister instance "+id, err)
	if err != nil {
		s.fail(c, fmt.Errorf("deregister %s of %s: %w", id, app, err))
		return
	}
	s.log.Info("instance deregistered", "app", app, "id", id)
	c.Status(http.StatusNoContent)
}
