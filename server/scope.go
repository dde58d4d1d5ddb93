package server

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

// Roles beyond read and write, for environments: what a token may do in
// one environment. Each includes read.
//
//	read     GET every endpoint
//	request  + request promotions into the environment (someone else approves)
//	approve  + request, and approve other people's promotions
//	release  + write specs and versions, send commands, carry promotions out
//	admin    everything: release and approve, freeze, release plans
//	write    the role of a graylane without environments: admin everywhere
const (
	RoleRequest Role = "request"
	RoleApprove Role = "approve"
	RoleRelease Role = "release"
	RoleAdmin   Role = "admin"
)

// KnownRole reports whether r is a role.
func KnownRole(r Role) bool {
	switch r {
	case RoleRead, RoleRequest, RoleApprove, RoleRelease, RoleAdmin, RoleWrite:
		return true
	}
	return false
}

// grants lists what each role may do.
var grants = map[Role][]Role{
	RoleRead:    {RoleRead},
	RoleRequest: {RoleRead, RoleRequest},
	RoleApprove: {RoleRead, RoleRequest, RoleApprove},
	RoleRelease: {RoleRead, RoleRequest, RoleRelease},
	RoleAdmin:   {RoleRead, RoleRequest, RoleApprove, RoleRelease, RoleAdmin},
	RoleWrite:   {RoleRead, RoleRequest, RoleApprove, RoleRelease, RoleAdmin},
}

// allows reports whether a caller with role have may do need. RoleWrite
// as a need is RoleRelease (every write route of an app).
func allows(have, need Role) bool {
	if need == RoleWrite {
		need = RoleRelease
	}
	return slices.Contains(grants[have], need)
}

// roleIn is the token's role in env: its Envs entry when it has any
// (environments not listed: none), else Role everywhere. env "" (a route
// about no environment) is the highest role it has anywhere.
func (t Token) roleIn(env string) Role {
	if len(t.Envs) == 0 {
		return t.Role
	}
	if env != "" {
		return t.Envs[env]
	}
	best := Role("")
	for _, r := range t.Envs {
		if len(grants[r]) > len(grants[best]) {
			best = r
		}
	}
	return best
}

// scopedEnvs lists the environments a token is limited to ("" none).
func (t Token) scopedEnvs() string {
	names := make([]string, 0, len(t.Envs))
	for e := range t.Envs {
		names = append(names, e)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Denial rules (apiError.Rule), as in the promotion rules.
const (
	ruleScope = "scope"
	ruleRole  = "role"
)

// authorize checks that token t may act with need on the request's app in
// the request's environment, and returns its role there. The
// environment is the route's :env, else the server's own.
func (s *Server) authorize(c *gin.Context, t Token, need Role) (Role, string, string) {
	env := s.envOf(c)
	role := t.roleIn(env)
	if role == "" {
		return "", ruleScope, fmt.Sprintf("token %q is scoped to environments %s, not %s", t.Name, t.scopedEnvs(), env)
	}
	if app := c.Param("app"); app != "" && !s.appInScope(t, app) {
		return "", ruleScope, fmt.Sprintf("token %q may not act on app %s (its apps: %s; its teams: %s)", t.Name, app, listOr(t.Apps), listOr(t.Teams))
	}
	if !allows(role, need) {
		if need == RoleWrite {
			need = RoleRelease
		}
		where := ""
		if env != "" {
			where = " in " + env
		}
		if role == RoleRead && len(t.Envs) == 0 {
			return role, ruleRole, fmt.Sprintf("token %q is read-only", t.Name)
		}
		return role, ruleRole, fmt.Sprintf("token %q has role %s%s, which may not %s", t.Name, role, where, verbs[need])
	}
	return role, "", ""
}

var verbs = map[Role]string{RoleRead: "read", RoleRequest: "request promotions", RoleApprove: "approve promotions",
	RoleRelease: "release (write specs and versions, send commands, carry promotions out)", RoleAdmin: "freeze environments or run release plans"}

func listOr(l []string) string {
	if len(l) == 0 {
		return "any"
	}
	return strings.Join(l, ", ")
}

// appInScope reports whether t may act on app: no app or team limits, or
// app listed in Apps, or app belonging to one of Teams.
func (s *Server) appInScope(t Token, app string) bool {
	if len(t.Apps) == 0 && len(t.Teams) == 0 {
		return true
	}
	if slices.Contains(t.Apps, app) {
		return true
	}
	for _, team := range s.cfg.Teams[app] {
		if slices.Contains(t.Teams, team) {
			return true
		}
	}
	return false
}

// callerRole is the role authenticate found for the request.
func callerRole(c *gin.Context) Role {
	if r, ok := c.Get(roleKey); ok {
		return r.(Role)
	}
	return ""
}

// envOf is the environment a request acts in: the route's :env, else the
// server's own.
func (s *Server) envOf(c *gin.Context) string {
	if e := c.Param("env"); e != "" {
		return e
	}
	if _, any := c.Get(anyEnvKey); any {
		return ""
	}
	return s.cfg.Env
}

const anyEnvKey = "graylane.anyEnv"

// anyEnv marks a route that is about every environment (the list of
// environments, an app across them, release plans): a token is judged by
// its highest role anywhere.
func anyEnv(c *gin.Context) { c.Set(anyEnvKey, true) }
