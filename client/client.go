package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/server"
)

// Client talks to one graylane server.
type Client struct {
	base  string
	token string
	env   string
	http  *http.Client
}

// InEnv returns a copy of c whose app calls go to environment env
// (/api/v1/envs/{env}/...; "" is the default environment).
func (c *Client) InEnv(env string) *Client {
	cp := *c
	cp.env = env
	return &cp
}

// url is the full URL of an API path, in the client's environment.
func (c *Client) url(path string) string {
	if c.env != "" {
		if rest, ok := strings.CutPrefix(path, "/api/v1/"); ok {
			path = "/api/v1/envs/" + url.PathEscape(c.env) + "/" + rest
		}
	}
	return c.base + path
}

// New returns a Client for baseURL (e.g. http://127.0.0.1:8080).
func New(baseURL string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{}}
}

// WithToken returns a copy of c that sends "Authorization: Bearer token".
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// Error is an API error.
type Error struct {
	Status  int
	Message string `json:"error"`
	Field   string `json:"field"`
	// Rule names the rule that refused (scope, role, ...).
	Rule string `json:"rule"`
	body []byte
}

func (e *Error) Error() string {
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		return fmt.Sprintf("%s (field %s, HTTP %d)", e.Message, e.Field, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("graylane API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode, body: b}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Summary is one row of Apps.
type Summary = engine.Summary

// ListOptions filters and pages GET /api/v1/apps.
type ListOptions struct {
	// Phase keeps apps in these phases (comma-separated, e.g. "Paused,Degraded").
	Phase string
	// Search keeps apps whose name contains it.
	Search string
	// Attention keeps apps needing attention: "true" or one reason.
	Attention string
	// Limit is the page size (0: the server's default, 100).
	Limit int
	// Continue is the token of the previous page.
	Continue string
}

// AppList is one page of apps.
type AppList struct {
	Apps     []Summary     `json:"apps"`
	Continue string        `json:"continue"`
	Total    int           `json:"total"`
	Counts   engine.Counts `json:"counts"`
	Limit    int           `json:"limit"`
}

// AppsPage reads one page of the apps list.
func (c *Client) AppsPage(ctx context.Context, o ListOptions) (AppList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"phase": o.Phase, "q": o.Search, "attention": o.Attention, "continue": o.Continue} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	path := "/api/v1/apps"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AppList
	err := c.do(ctx, http.MethodGet, path, "", nil, &out)
	return out, err
}

// Apps lists every app matching o, following the pages.
func (c *Client) Apps(ctx context.Context, o ...ListOptions) ([]Summary, error) {
	var opt ListOptions
	if len(o) > 0 {
		opt = o[0]
	}
	var all []Summary
	for {
		p, err := c.AppsPage(ctx, opt)
		if err != nil {
			return all, err
		}
		all = append(all, p.Apps...)
		if p.Continue == "" {
			return all, nil
		}
		opt.Continue = p.Continue
	}
}

// App returns one app's view.
func (c *Client) App(ctx context.Context, app string) (engine.AppView, error) {
	var v engine.AppView
	err := c.do(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app), "", nil, &v)
	return v, err
}

// SetVersion writes a new desired version to the config centre.
func (c *Client) SetVersion(ctx context.Context, app, version string) error {
	b, _ := json.Marshal(map[string]string{"version": version})
	return c.do(ctx, http.MethodPut, "/api/v1/apps/"+url.PathEscape(app)+"/version", "application/json", b, nil)
}

// PutSpec writes a whole release spec (YAML or JSON) to the config centre.
func (c *Client) PutSpec(ctx context.Context, app string, doc []byte) error {
	return c.do(ctx, http.MethodPut, "/api/v1/apps/"+url.PathEscape(app), "application/yaml", doc, nil)
}

// Command sends promote, promote-full, pause, resume, abort or rollback.
func (c *Client) Command(ctx context.Context, app string, cmd rollout.Command) (engine.AppView, error) {
	var v engine.AppView
	err := c.do(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/"+string(cmd), "", nil, &v)
	return v, err
}

// Watch follows app's event stream, calling fn for every message until fn
// returns false, ctx ends or the stream breaks. It reconnects after a
// broken stream (graylane restarted) until ctx ends.
func (c *Client) Watch(ctx context.Context, app string, fn func(engine.Message) bool) error {
	for {
		done, err := c.watchOnce(ctx, app, fn)
		if done || ctx.Err() != nil {
			return err
		}
		if e, ok := err.(*Error); ok && e.Status < 500 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (c *Client) watchOnce(ctx context.Context, app string, fn func(engine.Message) bool) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/api/v1/apps/"+url.PathEscape(app)+"/events?history=0"), nil)
	if err != nil {
		return true, err
	}
	req.Header.Set("Accept", "text/event-stream")
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil {
			e.Message = string(b)
		}
		return false, e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				var m engine.Message
				if err := json.Unmarshal(data, &m); err == nil {
					if !fn(m) {
						return true, nil
					}
				}
				data = data[:0]
			}
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):]...)
		}
	}
	return false, sc.Err()
}

// Revisions lists an app's kept revisions, newest first (without their
// spec texts).
func (c *Client) Revisions(ctx context.Context, app string) ([]records.Revision, error) {
	var out server.RevisionList
	err := c.do(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/revisions", "", nil, &out)
	return out.Revisions, err
}

// Revision returns one revision with its spec and spec diff.
func (c *Client) Revision(ctx context.Context, app string, n int) (records.Revision, error) {
	var out records.Revision
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/apps/%s/revisions/%d", url.PathEscape(app), n), "", nil, &out)
	return out, err
}

// RollbackTo rolls app back to a kept revision (or the newest of a
// version): its code version and bound config are written to the centre.
func (c *Client) RollbackTo(ctx context.Context, app string, req server.RollbackRequest) (server.RollbackResult, error) {
	body, _ := json.Marshal(req)
	var out server.RollbackResult
	err := c.do(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/rollback", "application/json", body, &out)
	return out, err
}

// DryRunSpec asks what writing doc as app's spec would do; nothing is
// written. An invalid spec is not an error here: the result says Valid
// false and lists the field errors.
func (c *Client) DryRunSpec(ctx context.Context, app string, doc []byte) (server.DryRunResult, error) {
	return c.dryRun(ctx, "/api/v1/apps/"+url.PathEscape(app)+"?dryRun=true", "application/yaml", doc)
}

// DryRunVersion asks what setting app's version would do.
func (c *Client) DryRunVersion(ctx context.Context, app, version string) (server.DryRunResult, error) {
	body, _ := json.Marshal(map[string]string{"version": version})
	return c.dryRun(ctx, "/api/v1/apps/"+url.PathEscape(app)+"/version?dryRun=true", "application/json", body)
}

func (c *Client) dryRun(ctx context.Context, path, ctype string, body []byte) (server.DryRunResult, error) {
	var out server.DryRunResult
	err := c.do(ctx, http.MethodPut, path, ctype, body, &out)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusBadRequest && e.body != nil && json.Unmarshal(e.body, &out) == nil && out.DryRun {
		return out, nil
	}
	return out, err
}

// Stats returns every app's release statistics.
func (c *Client) Stats(ctx context.Context) (server.AllStats, error) {
	var out server.AllStats
	err := c.do(ctx, http.MethodGet, "/api/v1/stats", "", nil, &out)
	return out, err
}

// AppStats returns one app's release statistics.
func (c *Client) AppStats(ctx context.Context, app string) (server.AppStats, error) {
	var out server.AppStats
	err := c.do(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/stats", "", nil, &out)
	return out, err
}

// AuditQuery selects audit records (GET /api/v1/audit).
type AuditQuery struct {
	App, User, Since, Until string
	Limit                   int
}

// Audit reads the audit log, newest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]audit.Record, error) {
	v := url.Values{}
	for k, s := range map[string]string{"app": q.App, "user": q.User, "since": q.Since, "until": q.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	path := "/api/v1/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out server.AuditList
	err := c.do(ctx, http.MethodGet, path, "", nil, &out)
	return out.Records, err
}
