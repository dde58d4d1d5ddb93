package proxyd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/spec"
)

// Client is the proxy.DataPlane of a `graylane proxy` process, driven over
// its control socket. It is safe for concurrent use.
type Client struct {
	socket string
	http   *http.Client
}

var _ proxy.DataPlane = (*Client)(nil)

// ErrUnavailable is returned (wrapped) when the proxy process does not
// answer on its control socket.
var ErrUnavailable = errors.New("the proxy process does not answer")

// NewClient returns a client of the proxy process whose control socket is
// socket. It does not connect until the first call.
func NewClient(socket string) *Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &Client{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     30 * time.Second,
		},
	}}
}

// Socket is the control socket's path.
func (c *Client) Socket() string { return c.socket }

// do sends one call and decodes a 2xx answer into out; an error answer is
// mapped back to proxy.ErrUnknownApp or spec.ErrInvalid.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://proxy"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s on %s: %w: %v", method, path, c.socket, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		var e errorBody
		_ = json.Unmarshal(b, &e)
		msg := e.Error
		if msg == "" {
			msg = resp.Status
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%s: %w", msg, proxy.ErrUnknownApp)
		case http.StatusBadRequest:
			return fmt.Errorf("%s: %w", msg, spec.ErrInvalid)
		}
		return errors.New(msg)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: answer: %w", method, path, err)
		}
	}
	return nil
}

func appPath(app string) string { return "/v1/apps/" + url.PathEscape(app) }

// Update applies u to app's proxy in the proxy process (see proxy.DataPlane).
func (c *Client) Update(ctx context.Context, app string, u proxy.Update) (proxy.Routes, error) {
	var res updateResult
	if err := c.do(ctx, http.MethodPut, appPath(app), updateBody{Schema: Schema, Update: u}, &res); err != nil {
		return proxy.Routes{}, err
	}
	if res.Error != "" {
		return res.Routes, errors.New(res.Error)
	}
	return res.Routes, nil
}

// Routes returns app's routes in the proxy process.
func (c *Client) Routes(ctx context.Context, app string) (proxy.Routes, error) {
	var res routesBody
	err := c.do(ctx, http.MethodGet, appPath(app), nil, &res)
	return res.Routes, err
}

// Apps lists the apps the proxy process serves.
func (c *Client) Apps(ctx context.Context) ([]string, error) {
	var res appsBody
	err := c.do(ctx, http.MethodGet, "/v1/apps", nil, &res)
	return res.Apps, err
}

// InFlight returns the requests in flight on addr for app.
func (c *Client) InFlight(ctx context.Context, app, addr string) (int, error) {
	var res inflightBody
	err := c.do(ctx, http.MethodGet, appPath(app)+"/inflight?addr="+url.QueryEscape(addr), nil, &res)
	return res.InFlight, err
}

// Forget closes app's proxy in the proxy process.
func (c *Client) Forget(ctx context.Context, app string) error {
	return c.do(ctx, http.MethodDelete, appPath(app), nil, nil)
}

// Health asks the proxy process who it is.
func (c *Client) Health(ctx context.Context) (pid int, version string, err error) {
	var h health
	if err := c.do(ctx, http.MethodGet, "/v1/health", nil, &h); err != nil {
		return 0, "", err
	}
	if h.Schema != Schema {
		return 0, "", fmt.Errorf("the proxy process speaks %q, graylane %q", h.Schema, Schema)
	}
	return h.PID, h.Version, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }
