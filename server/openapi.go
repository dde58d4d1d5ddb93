package server

import (
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/promotion"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/spec"
)

// route describes one endpoint for the OpenAPI document. The document is
// generated from this table and the Go types below; openapi_test.go
// checks the table against the gin router in both directions and
// validates the answers of a scripted session against the document, so
// neither can drift.
type route struct {
	method, path string
	summary      string
	tag          string
	// auth is "" (open), "read" or "write".
	auth  string
	query []queryParam
	// body is the JSON request body's type (nil: none); bodyYAML adds a
	// YAML text body; bodyOptional marks the body optional.
	body         any
	bodyYAML     bool
	bodyOptional bool
	// ok is the success status and its body's type; text names a non-JSON
	// content type instead. also lists further success answers.
	ok   int
	resp any
	text string
	also []any
}

type queryParam struct {
	name, desc string
	typ        string
}

// Response shapes the handlers write as gin.H, described as types so the
// document can say what they hold (the session test checks them).
type (
	appsList struct {
		Apps []AppSummary `json:"apps"`
	}
	writeResult struct {
		App             string `json:"app"`
		Written         bool   `json:"written"`
		Centre          string `json:"centre"`
		DocumentVersion string `json:"documentVersion"`
		Revision        int64  `json:"revision"`
	}
	versionResult struct {
		App             string `json:"app"`
		Version         string `json:"version"`
		Centre          string `json:"centre"`
		DocumentVersion string `json:"documentVersion"`
		Revision        int64  `json:"revision"`
	}
	deleteResult struct {
		App     string `json:"app"`
		Deleted bool   `json:"deleted"`
	}
	observeResult struct {
		App     string `json:"app"`
		Observe string `json:"observe"`
	}
	instanceList struct {
		Instances []gray.Instance `json:"instances"`
	}
	heartbeatReply struct {
		Instance gray.Instance `json:"instance"`
	}
	configStatus struct {
		App       string              `json:"app"`
		Config    *configrelease.View `json:"config"`
		Instances []adapters.Instance `json:"instances"`
	}
	configHistoryList struct {
		App     string        `json:"app"`
		History []historyItem `json:"history"`
	}
)

// routes is every endpoint graylane serves.
func routes() []route {
	dry := []queryParam{{"dryRun", "true: validate and answer what would change (the diff, the plan, config and gray changes); nothing is written anywhere", "boolean"}}
	cmd := func(name, summary string) route {
		return route{method: "POST", path: "/api/v1/apps/:app/" + name, summary: summary, tag: "commands", auth: "write", ok: 200, resp: AppDetail{}}
	}
	return []route{
		{method: "GET", path: "/healthz", summary: "Liveness", tag: "health", ok: 200, text: "text/plain"},
		{method: "GET", path: "/readyz", summary: "Readiness: 200 once the centre was read and is reachable, else 503 with the reason", tag: "health", ok: 200, text: "text/plain"},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics", tag: "health", ok: 200, text: "text/plain"},
		{method: "GET", path: "/api/v1/openapi.json", summary: "This document", tag: "health", ok: 200, resp: map[string]any{}},
		{method: "GET", path: "/api/v1/apps", summary: "A page of apps with a status summary, filtered", tag: "apps", auth: "read", ok: 200, resp: AppList{},
			query: []queryParam{{"phase", "comma-separated phases", "string"}, {"q", "search in names and versions", "string"},
				{"attention", "only apps that need attention (true) or not (false)", "string"}, {"limit", "page size", "integer"}, {"continue", "the token of the next page", "string"}}},
		{method: "GET", path: "/api/v1/events", summary: "Server-Sent Events of every app (batches of changed summaries)", tag: "apps", auth: "read", ok: 200, text: "text/event-stream",
			query: []queryParam{{"events", "1 adds every app's events", "string"}}},
		{method: "GET", path: "/api/v1/health", summary: "Readiness as JSON (always 200)", tag: "health", auth: "read", ok: 200, resp: Health{}},
		{method: "GET", path: "/api/v1/session", summary: "The console session, if any", tag: "console", ok: 200, resp: SessionInfo{}},
		{method: "POST", path: "/api/v1/session", summary: "Console sign-in with a token (sets the session cookie)", tag: "console", body: loginBody{}, ok: 200, resp: SessionInfo{}},
		{method: "DELETE", path: "/api/v1/session", summary: "Console sign-out", tag: "console", ok: 200, resp: SessionInfo{}},
		{method: "GET", path: "/api/v1/apps/:app", summary: "An app: its spec, status, instances and the actions possible now", tag: "apps", auth: "read", ok: 200, resp: AppDetail{}},
		{method: "GET", path: "/api/v1/apps/:app/spec", summary: "The app's document as the centre holds it", tag: "apps", auth: "read", ok: 200, resp: specDoc{}},
		{method: "POST", path: "/api/v1/apps/:app/validate", summary: "Validate a spec as PUT would, writing nothing", tag: "apps", auth: "read", body: spec.Release{}, bodyYAML: true, ok: 200, resp: validation{}},
		{method: "PUT", path: "/api/v1/apps/:app", summary: "Write an app's whole release spec to the config centre (If-Match: compare-and-swap)", tag: "apps", auth: "write",
			body: spec.Release{}, bodyYAML: true, query: dry, ok: 200, resp: writeResult{}, also: []any{DryRunResult{}}},
		{method: "DELETE", path: "/api/v1/apps/:app", summary: "Remove an app's spec from the centre: graylane scales it to zero and forgets it", tag: "apps", auth: "write", ok: 200, resp: deleteResult{}},
		{method: "PUT", path: "/api/v1/apps/:app/version", summary: "Set only the version in the stored document (layout and comments kept)", tag: "apps", auth: "write",
			body: versionBody{}, query: dry, ok: 200, resp: versionResult{}, also: []any{DryRunResult{}}},
		{method: "GET", path: "/api/v1/apps/:app/events", summary: "Server-Sent Events: status (the app view) and event messages", tag: "apps", auth: "read", ok: 200, text: "text/event-stream",
			query: []queryParam{{"history", "0 skips the recent events", "string"}}},
		cmd("promote", "Skip the current step (continue a pause; switch a blue-green)"),
		cmd("promote-full", "Skip every remaining step"),
		cmd("pause", "Hold the release where it is"),
		cmd("resume", "Continue a paused release, or retry an aborted one"),
		cmd("abort", "Send all traffic back to the stable version"),
		{method: "POST", path: "/api/v1/apps/:app/observe", summary: "A deploy system's callback: a pass over the app at once, on the replica driving it (no body)",
			tag: "commands", auth: "write", ok: 202, resp: observeResult{}},
		{method: "POST", path: "/api/v1/apps/:app/rollback", summary: "Without a body: the rollback command. With {revision} or {version}: back to that revision's code and bound config, written to the centre",
			tag: "commands", auth: "write", body: RollbackRequest{}, bodyOptional: true, ok: 200, resp: AppDetail{}, also: []any{RollbackResult{}}},
		{method: "GET", path: "/api/v1/apps/:app/gray", summary: "The app's published gray document", tag: "gray", auth: "read", ok: 200, resp: gray.Document{}},
		{method: "GET", path: "/api/v1/apps/:app/instances", summary: "Registered instances per version", tag: "gray", auth: "read", ok: 200, resp: InstancesView{}},
		{method: "GET", path: "/api/v1/instances", summary: "Every registered instance", tag: "gray", auth: "read", ok: 200, resp: instanceList{},
			query: []queryParam{{"app", "only this app", "string"}}},
		{method: "POST", path: "/api/v1/instances", summary: "Register an instance (renewed by heartbeats)", tag: "gray", auth: "write", body: RegisterRequest{}, ok: 201, resp: RegisterResponse{}},
		{method: "POST", path: "/api/v1/instances/:app/:id/heartbeat", summary: "Renew a registration (not audited: it would flood the log)", tag: "gray", auth: "write", ok: 200, resp: heartbeatReply{}},
		{method: "DELETE", path: "/api/v1/instances/:app/:id", summary: "Deregister an instance", tag: "gray", auth: "write", ok: 204},
		{method: "GET", path: "/api/v1/apps/:app/config", summary: "Bound config: what each target holds, the gate, drift", tag: "config", auth: "read", ok: 200, resp: configStatus{}},
		{method: "GET", path: "/api/v1/apps/:app/config/history", summary: "Every config version released, newest first", tag: "config", auth: "read", ok: 200, resp: configHistoryList{}},
		{method: "GET", path: "/api/v1/apps/:app/config/history/:identity", summary: "One config version with its files (secrets redacted without a write token)", tag: "config", auth: "read", ok: 200, resp: configrelease.HistoryEntry{}},
		{method: "GET", path: "/api/v1/apps/:app/config/history/:identity/files/:name", summary: "One config file, raw (secrets redacted without a write token)", tag: "config", auth: "read", ok: 200, text: "text/plain"},
		{method: "GET", path: "/api/v1/apps/:app/revisions", summary: "The app's revisions, newest first (without spec texts)", tag: "records", auth: "read", ok: 200, resp: RevisionList{}},
		{method: "GET", path: "/api/v1/apps/:app/revisions/:n", summary: "One revision with its spec and spec diff", tag: "records", auth: "read", ok: 200, resp: records.Revision{}},
		{method: "GET", path: "/api/v1/apps/:app/stats", summary: "The app's release statistics over 7 and 30 days", tag: "records", auth: "read", ok: 200, resp: AppStats{}},
		{method: "GET", path: "/api/v1/stats", summary: "Release statistics of every app and all together, over 7 and 30 days", tag: "records", auth: "read", ok: 200, resp: AllStats{}},
		{method: "GET", path: "/api/v1/audit", summary: "The audit log, newest first", tag: "records", auth: "read", ok: 200, resp: AuditList{},
			query: []queryParam{{"app", "only this app", "string"}, {"user", "only this caller (token name)", "string"},
				{"since", "RFC 3339 time or a duration back from now (24h)", "string"}, {"until", "RFC 3339 time or a duration back from now", "string"},
				{"limit", "at most this many records (1..1000, default 100)", "integer"}}},
		{method: "GET", path: "/api/v1/environments", summary: "The declared environments in order: rules, centre, freeze", tag: "environments", auth: "read", ok: 200, resp: EnvironmentList{}},
		{method: "PUT", path: "/api/v1/environments/:env/freeze", summary: "Freeze an environment (no promotions in, no releases started) with a reason", tag: "environments", auth: "admin", body: FreezeBody{}, ok: 200, resp: environments.Freeze{}},
		{method: "DELETE", path: "/api/v1/environments/:env/freeze", summary: "Unfreeze an environment", tag: "environments", auth: "admin", ok: 200, resp: unfreezeResult{}},
		{method: "GET", path: "/api/v1/apps/:app/environments", summary: "The app in every environment: running bundle, Healthy since, digests, what is promotable where and why not", tag: "environments", auth: "read", ok: 200, resp: AppEnvironments{}},
		{method: "GET", path: "/api/v1/pipeline", summary: "Every app in every environment (the console's board): running bundle, pending promotion and the rules refusing it, freezes", tag: "environments", auth: "read", ok: 200, resp: promotion.Board{}},
		{method: "POST", path: "/api/v1/apps/:app/environments/:env/promote", summary: "Promote the bundle of env's source environment into env: 200 promoted, 202 pending (waits for a rule), 409 refused (rule named)", tag: "environments", auth: "request",
			body: BundleBody{}, bodyOptional: true, ok: 200, resp: promotion.Result{}},
		{method: "POST", path: "/api/v1/apps/:app/environments/:env/approve", summary: "Approve the pending promotion into env (not the requester's own); 200 approved or promoted, 409 refused", tag: "environments", auth: "approve",
			body: BundleBody{}, bodyOptional: true, ok: 200, resp: promotion.Result{}},
		{method: "GET", path: "/api/v1/plans", summary: "Release plans, newest first", tag: "environments", auth: "read", ok: 200, resp: PlanList{}},
		{method: "POST", path: "/api/v1/plans", summary: "Start a release plan: apps promoted into env in order, each once the one before is Healthy; a failure stops it", tag: "environments", auth: "release", body: PlanBody{}, ok: 201, resp: promotion.Plan{}},
		{method: "GET", path: "/api/v1/plans/:id", summary: "One release plan and its progress", tag: "environments", auth: "read", ok: 200, resp: promotion.Plan{}},
		{method: "POST", path: "/api/v1/plans/:id/cancel", summary: "Stop a running release plan", tag: "environments", auth: "release", ok: 200, resp: promotion.Plan{}},
		{method: "GET", path: "/api/v1/apps/:app/hooks", summary: "Release hook outcomes (and output) per bundle, newest first", tag: "environments", auth: "read", ok: 200, resp: HookList{}},
	}
}

// unfreezeResult is DELETE /environments/{env}/freeze.
type unfreezeResult struct {
	Env    string `json:"env"`
	Frozen bool   `json:"frozen"`
}

// openAPIPath turns a gin path into an OpenAPI one (/apps/:app -> /apps/{app}).
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// OpenAPI returns the OpenAPI 3.0 document of the API.
func OpenAPI() map[string]any {
	g := newSchemas()
	errSchema := g.of(reflect.TypeOf(apiError{}))
	paths := map[string]any{}
	for _, r := range routes() {
		op := map[string]any{"summary": r.summary, "tags": []string{r.tag}, "operationId": strings.ToLower(r.method) + strings.ReplaceAll(strings.ReplaceAll(openAPIPath(r.path), "/", "_"), "{", "")}
		op["operationId"] = strings.NewReplacer("}", "", "-", "_").Replace(op["operationId"].(string))
		var params []any
		for _, seg := range strings.Split(r.path, "/") {
			if strings.HasPrefix(seg, ":") {
				params = append(params, map[string]any{"name": seg[1:], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
		for _, q := range r.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.desc, "schema": map[string]any{"type": q.typ}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.body != nil {
			content := map[string]any{"application/json": map[string]any{"schema": g.of(reflect.TypeOf(r.body))}}
			if r.bodyYAML {
				content["application/yaml"] = map[string]any{"schema": map[string]any{"type": "string", "description": "the release spec as YAML"}}
			}
			op["requestBody"] = map[string]any{"required": !r.bodyOptional, "content": content}
		}
		resps := map[string]any{}
		ok := map[string]any{"description": "success"}
		switch {
		case r.text != "":
			ok["content"] = map[string]any{r.text: map[string]any{"schema": map[string]any{"type": "string"}}}
		case r.resp != nil:
			sch := g.of(reflect.TypeOf(r.resp))
			if len(r.also) > 0 {
				alts := []any{sch}
				for _, a := range r.also {
					alts = append(alts, g.of(reflect.TypeOf(a)))
				}
				sch = map[string]any{"oneOf": alts}
			}
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": sch}}
		}
		resps[strconv.Itoa(r.ok)] = ok
		if r.method == "PUT" && len(r.query) > 0 {
			resps["400"] = map[string]any{"description": "invalid input (a dry-run answers its DryRunResult with valid false)",
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"oneOf": []any{errSchema, g.of(reflect.TypeOf(DryRunResult{}))}}}}}
		}
		resps["default"] = map[string]any{"description": "error: 400 bad input (field names it; nothing written), 401/403 token, 404 unknown, 409 command not possible now, 412 compare-and-swap lost, 501 not configured, 503 centre unavailable",
			"content": map[string]any{"application/json": map[string]any{"schema": errSchema}}}
		op["responses"] = resps
		if r.auth != "" {
			op["security"] = []any{map[string]any{"bearer": []string{}}, map[string]any{"session": []string{}}}
			op["x-graylane-role"] = r.auth
		}
		p := openAPIPath(r.path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		item[strings.ToLower(r.method)] = op
	}
	names := make([]string, 0, len(g.components))
	for n := range g.components {
		names = append(names, n)
	}
	sort.Strings(names)
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "graylane API", "version": "v1",
			"description": "graylane's HTTP API. Writes go to the config centre (the source of truth). Mutating routes refuse unknown query parameters (400) and are audited (GET /api/v1/audit). With environments, /api/v1/envs/{env}/... is every path below for that environment (/api/v1/envs/prod/apps/{app}); /api/v1/apps/{app} is the default environment's."},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.components,
			"securitySchemes": map[string]any{
				"bearer":  map[string]any{"type": "http", "scheme": "bearer", "description": "a token from http.token or http.tokens (read or write)"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": "graylane_session", "description": "a console session"},
			},
		},
	}
}

func (s *Server) openAPI(c *gin.Context) { c.JSON(http.StatusOK, OpenAPI()) }
