package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

var (
	opsToken    = Token{Name: "ops", Secret: "ops-secret-1", Role: RoleWrite}
	viewerToken = Token{Name: "viewer", Secret: "viewer-secret-1", Role: RoleRead}
)

type sesEnv struct {
	*env
	srv *Server
	ts  *httptest.Server
}

func newSesEnv(t *testing.T, tls bool, ttl time.Duration, tokens ...Token) *sesEnv {
	t.Helper()
	src := memory.New()
	eng := engine.New(engine.Config{Source: src, Store: engine.NewMemoryStore(), Resolver: &instant{want: map[string]traffic.Replicas{}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go eng.Run(ctx)
	s := New(Config{Engine: eng, Source: src, Writer: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CommandTimeout: 5 * time.Second, Tokens: tokens, SessionTTL: ttl, Version: "test-1"})
	var ts *httptest.Server
	if tls {
		ts = httptest.NewTLSServer(s.Handler())
	} else {
		ts = httptest.NewServer(s.Handler())
	}
	t.Cleanup(ts.Close)
	src.Set("demo", []byte(goodSpec))
	e := &env{t: t, src: src, eng: eng, url: ts.URL}
	e.waitPhase("demo", "Healthy")
	return &sesEnv{env: e, srv: s, ts: ts}
}

// call sends a request with optional cookie, CSRF token and Origin.
func (e *sesEnv) call(method, path, body string, cookie *http.Cookie, csrf, origin string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if cookie != nil {
		req.AddCookie(cookie)
	}
	if csrf != "" {
		req.Header.Set(csrfHeader, csrf)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp, out
}

func (e *sesEnv) login(tok Token) (*http.Cookie, string) {
	e.t.Helper()
	resp, body := e.call("POST", "/api/v1/session", `{"token":"`+tok.Secret+`"}`, nil, "", "")
	if resp.StatusCode != 200 {
		e.t.Fatalf("login as %s: %d %v", tok.Name, resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c, body["csrf"].(string)
		}
	}
	e.t.Fatal("no session cookie")
	return nil, ""
}

func TestConsoleSessions(t *testing.T) {
	e := newSesEnv(t, false, time.Hour, opsToken, viewerToken)
	resp, body := e.call("GET", "/api/v1/session", "", nil, "", "")
	if resp.StatusCode != 200 || body["authRequired"] != true || body["authenticated"] != false || body["version"] != "test-1" {
		t.Fatalf("signed out: %d %v", resp.StatusCode, body)
	}
	if resp, body := e.call("POST", "/api/v1/session", `{"token":"guess-guess"}`, nil, "", ""); resp.StatusCode != 401 || body["field"] != "token" {
		t.Fatalf("wrong token: %d %v", resp.StatusCode, body)
	}
	if resp, _ := e.call("GET", "/api/v1/apps", "", nil, "", ""); resp.StatusCode != 401 {
		t.Fatalf("no session, no token: %d", resp.StatusCode)
	}

	// a read token's session sees everything and changes nothing
	vc, vcsrf := e.login(viewerToken)
	if !vc.HttpOnly || vc.SameSite != http.SameSiteStrictMode || vc.Secure || vc.Path != "/" || vc.MaxAge != 3600 {
		t.Fatalf("cookie attributes: %+v", vc)
	}
	if resp, _ := e.call("GET", "/api/v1/apps", "", vc, "", ""); resp.StatusCode != 200 {
		t.Fatalf("viewer lists: %d", resp.StatusCode)
	}
	_, v := e.call("GET", "/api/v1/apps/demo", "", vc, "", "")
	for _, a := range v["actions"].([]any) {
		m := a.(map[string]any)
		if m["allowed"] != false || m["reason"] != `token "viewer" is read-only` {
			t.Fatalf("viewer's action %v", m)
		}
	}
	if resp, _ := e.call("POST", "/api/v1/apps/demo/pause", "", vc, vcsrf, ""); resp.StatusCode != 403 {
		t.Fatalf("viewer pauses: %d", resp.StatusCode)
	}

	// a write token's session acts, with the CSRF token, from the same origin
	sub, cancel := e.eng.Broker().Subscribe("demo")
	defer cancel()
	oc, ocsrf := e.login(opsToken)
	_, info := e.call("GET", "/api/v1/session", "", oc, "", "")
	if info["user"] != "ops" || info["role"] != "write" || info["csrf"] != ocsrf {
		t.Fatalf("session info: %v", info)
	}
	if resp, body := e.call("POST", "/api/v1/apps/demo/pause", "", oc, "", ""); resp.StatusCode != 403 || !strings.Contains(body["error"].(string), "CSRF") {
		t.Fatalf("no CSRF token: %d %v", resp.StatusCode, body)
	}
	if resp, _ := e.call("POST", "/api/v1/apps/demo/pause", "", oc, vcsrf, ""); resp.StatusCode != 403 {
		t.Fatalf("another session's CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := e.call("POST", "/api/v1/apps/demo/pause", "", oc, ocsrf, "http://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("cross-origin: %d", resp.StatusCode)
	}
	if resp, body := e.call("POST", "/api/v1/apps/demo/pause", "", oc, ocsrf, e.url); resp.StatusCode != 200 {
		t.Fatalf("pause from the console: %d %v", resp.StatusCode, body)
	}
	deadline := time.After(5 * time.Second)
	for audited := false; !audited; {
		select {
		case m := <-sub:
			if m.Event != nil && m.Event.Reason == "Audit" {
				if m.Event.Message != "ops: pause (ok)" {
					t.Fatalf("audit event %q", m.Event.Message)
				}
				audited = true
			}
		case <-deadline:
			t.Fatal("the console's pause was not audited")
		}
	}

	// logout clears the cookie
	resp, _ = e.call("DELETE", "/api/v1/session", "", oc, ocsrf, "")
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %+v", resp.StatusCode, resp.Cookies())
	}

	// rotating the token ends its sessions on every replica at once
	e.srv.SetTokens([]Token{{Name: "ops", Secret: "ops-secret-2", Role: RoleWrite}, viewerToken})
	resp, body = e.call("GET", "/api/v1/apps", "", oc, "", "")
	if resp.StatusCode != 401 || !strings.Contains(body["error"].(string), "sign in again") {
		t.Fatalf("rotated token's session: %d %v", resp.StatusCode, body)
	}
	// a tampered cookie is refused
	forged := *vc
	forged.Value = strings.Replace(forged.Value, ".", "x.", 1)
	if resp, _ := e.call("GET", "/api/v1/apps", "", &forged, "", ""); resp.StatusCode != 401 {
		t.Fatalf("forged cookie: %d", resp.StatusCode)
	}
}

func TestSessionsExpire(t *testing.T) {
	e := newSesEnv(t, false, time.Second, opsToken)
	c, _ := e.login(opsToken)
	testenv.Eventually(t, 5*time.Second, "the session expired", func() error {
		resp, body := e.call("GET", "/api/v1/apps", "", c, "", "")
		msg, _ := body["error"].(string)
		return testenv.Check(resp.StatusCode == 401 && strings.Contains(msg, "expired"), "%d %v", resp.StatusCode, body)
	})
}

func TestSessionCookieIsSecureOverTLS(t *testing.T) {
	e := newSesEnv(t, true, time.Hour, opsToken)
	c, _ := e.login(opsToken)
	if !c.Secure {
		t.Fatalf("cookie over TLS not Secure: %+v", c)
	}
}

// Without tokens the API is open (as on loopback today), but a browser
// request from another site changes nothing.
func TestNoTokensRefusesCrossSiteChanges(t *testing.T) {
	e := newSesEnv(t, false, time.Hour)
	_, info := e.call("GET", "/api/v1/session", "", nil, "", "")
	if info["authRequired"] != false || info["user"] != "anonymous" || info["role"] != "write" {
		t.Fatalf("session info without tokens: %v", info)
	}
	if resp, _ := e.call("POST", "/api/v1/apps/demo/pause", "", nil, "", "http://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("cross-site pause: %d", resp.StatusCode)
	}
	if resp, body := e.call("POST", "/api/v1/apps/demo/pause", "", nil, "", ""); resp.StatusCode != 200 {
		t.Fatalf("curl-style pause: %d %v", resp.StatusCode, body)
	}
}
