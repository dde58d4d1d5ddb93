package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultEnv      = "DEV"
	DefaultOperator = "apollo"
	DefaultTimeout  = 10 * time.Second
)

// Sentinel errors matched by *Error (errors.Is).
var (
	ErrUnauthorized = errors.New("open api token missing, unknown or expired (401)")
	ErrForbidden    = errors.New("open api token not granted on this app or namespace (403)")
	ErrNotFound     = errors.New("not found (404)")
	ErrRateLimited  = errors.New("open api rate limit exceeded (429)")
	ErrBadRequest   = errors.New("rejected by apollo (400)")
	ErrServer       = errors.New("apollo portal error (5xx)")
	ErrUnavailable  = errors.New("apollo portal unreachable")
)

// Error is a failed Open API call.
type Error struct {
	Method string
	Path   string // path under /openapi/v1, with the query
	// StatusCode is the HTTP status; 0 when no answer arrived (Err says why).
	StatusCode int
	// Message and Exception are Apollo's error body fields, when present.
	Message   string
	Exception string
	// Err is the transport error when StatusCode is 0.
	Err error
}

func (e *Error) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("apollo open api %s %s: %v", e.Method, e.Path, e.Err)
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("apollo open api %s %s: %d %s", e.Method, e.Path, e.StatusCode, msg)
}

// Unwrap returns the sentinel for the status (and the transport error).
func (e *Error) Unwrap() []error {
	var out []error
	switch s := e.StatusCode; {
	case s == 0:
		out = append(out, ErrUnavailable)
	case s == http.StatusUnauthorized:
		out = append(out, ErrUnauthorized)
	case s == http.StatusForbidden:
		out = append(out, ErrForbidden)
	case s == http.StatusNotFound:
		out = append(out, ErrNotFound)
	case s == http.StatusTooManyRequests:
		out = append(out, ErrRateLimited)
	case s == http.StatusBadGateway, s == http.StatusServiceUnavailable, s == http.StatusGatewayTimeout:
		out = append(out, ErrUnavailable)
	case s >= 500:
		out = append(out, ErrServer)
	case s >= 400:
		out = append(out, ErrBadRequest)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// Config configures a Client. PortalURL and Token are required.
type Config struct {
	// PortalURL is the portal's base URL, e.g. "http://apollo-portal:8070".
	PortalURL string
	// Token is the Open API consumer token (sent raw in Authorization).
	Token string
	// Env is the Apollo environment (DefaultEnv).
	Env string
	// Operator is the Apollo user every write names (DefaultOperator). It
	// must exist in the portal.
	Operator string
	// Timeout bounds each request (DefaultTimeout); calls also honour ctx.
	Timeout time.Duration
	// HTTPClient, if set, is used instead of a private one.
	HTTPClient *http.Client
}

// Client calls one portal's Open API for one env.
type Client struct {
	base     string // ".../openapi/v1"
	token    string
	env      string
	operator string
	timeout  time.Duration
	http     *http.Client
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.PortalURL == "" {
		return nil, errors.New("apollo open api: portal URL is required")
	}
	u, err := url.Parse(cfg.PortalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("apollo open api: portal URL %q is not an http(s) URL", cfg.PortalURL)
	}
	if cfg.Token == "" {
		return nil, errors.New("apollo open api: token is required")
	}
	if cfg.Env == "" {
		cfg.Env = DefaultEnv
	}
	if cfg.Operator == "" {
		cfg.Operator = DefaultOperator
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{
		base:     strings.TrimSuffix(u.String(), "/") + "/openapi/v1",
		token:    cfg.Token,
		env:      cfg.Env,
		operator: cfg.Operator,
		timeout:  cfg.Timeout,
		http:     hc,
	}, nil
}

// Env returns the Apollo environment the client writes to.
func (c *Client) Env() string { return c.env }

// Operator returns the Apollo user the client's writes name.
func (c *Client) Operator() string { return c.operator }

// Namespace names one namespace of one cluster of an app. For a gray
// branch, Cluster is the branch name (see Branch).
type Namespace struct {
	AppID   string
	Cluster string
	Name    string
}

// Branch returns the namespace as seen in its gray branch: item calls on it
// read and write the branch's items.
func (n Namespace) Branch(branch string) Namespace {
	n.Cluster = branch
	return n
}

func (n Namespace) String() string { return n.AppID + "/" + n.Cluster + "/" + n.Name }

// path returns P/rest... for ns, every segment escaped.
func (c *Client) path(ns Namespace, rest ...string) string {
	var b strings.Builder
	b.WriteString("/envs/" + url.PathEscape(c.env))
	b.WriteString("/apps/" + url.PathEscape(ns.AppID))
	b.WriteString("/clusters/" + url.PathEscape(ns.Cluster))
	b.WriteString("/namespaces/" + url.PathEscape(ns.Name))
	for _, r := range rest {
		b.WriteString("/" + url.PathEscape(r))
	}
	return b.String()
}

// do sends one request and decodes a JSON answer into out (when out is not
// nil and the body is not empty). It reports whether a body was present.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (bool, error) {
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return false, &Error{Method: method, Path: path, Err: err}
		}
		body = bytes.NewReader(b)
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, method, c.base+path, body)
	if err != nil {
		return false, &Error{Method: method, Path: path, Err: err}
	}
	req.Header.Set("Authorization", c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return false, &Error{Method: method, Path: path, Err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return false, &Error{Method: method, Path: path, Err: fmt.Errorf("read answer: %w", err)}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		e := &Error{Method: method, Path: path, StatusCode: res.StatusCode}
		var eb struct {
			Message   string `json:"message"`
			Exception string `json:"exception"`
			Error     string `json:"error"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			e.Message, e.Exception = eb.Message, eb.Exception
			if e.Message == "" {
				e.Message = eb.Error
			}
		}
		return false, e
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return false, nil
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return true, &Error{Method: method, Path: path, StatusCode: res.StatusCode, Err: fmt.Errorf("decode answer: %w", err)}
		}
	}
	return true, nil
}
