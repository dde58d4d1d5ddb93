package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Console sessions. A browser signs in once with an API token and gets a
// cookie instead of sending the token with every request:
//
//	graylane_session = base64url(payload) "." base64url(HMAC-SHA256(k, payload))
//	payload          = {"n": token name, "e": expiry (unix s), "i": random id}
//	k                = HMAC-SHA256(token secret, "graylane console session v1")
//
// The key derives from the token's own secret, so every replica that has
// the same tokens accepts the cookie (nothing is stored, in memory or in
// etcd), and rotating or removing a token ends its sessions at once. The
// role is read from the current token configuration on every request, not
// from the cookie. The cookie is HttpOnly and SameSite=Strict (Secure over
// TLS, or with Config.SecureCookies behind a TLS-terminating proxy).
//
// Requests that change something with a session cookie must carry the
// session's CSRF token in X-CSRF-Token (GET /api/v1/session gives it to
// the page; it is HMAC(k, "csrf:" id), so it too needs no storage).
// Bearer-token requests need none: a browser never sends those on its own.
//
// Logout deletes the cookie in the browser. As sessions are not stored, a
// copied cookie stays valid until it expires (Config.SessionTTL, default
// 12 h) or its token is rotated.

const (
	sessionCookie = "graylane_session"
	csrfHeader    = "X-CSRF-Token"
	// DefaultSessionTTL is how long a console session lasts.
	DefaultSessionTTL = 12 * time.Hour
)

type sessionPayload struct {
	Name   string `json:"n"`
	Expiry int64  `json:"e"`
	ID     string `json:"i"`
}

// session is a verified session cookie.
type session struct {
	token   Token
	payload sessionPayload
	key     []byte
}

func sessionKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("graylane console session v1"))
	return m.Sum(nil)
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func (s *session) csrf() string {
	return base64.RawURLEncoding.EncodeToString(mac(s.key, "csrf:", s.payload.ID))
}

func (s *session) expires() time.Time { return time.Unix(s.payload.Expiry, 0).UTC() }

var (
	errNoSession      = errors.New("no session")
	errSessionExpired = errors.New("your console session expired; sign in again")
	errSessionInvalid = errors.New("the session cookie is not valid (its token was changed or removed); sign in again")
)

// newSession makes a cookie value for token t.
func (s *Server) newSession(t Token) (string, *session) {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	p := sessionPayload{Name: t.Name, Expiry: time.Now().Add(s.cfg.SessionTTL).Unix(), ID: base64.RawURLEncoding.EncodeToString(id)}
	b, _ := json.Marshal(p)
	key := sessionKey(t.Secret)
	val := base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(mac(key, string(b)))
	return val, &session{token: t, payload: p, key: key}
}

// readSession verifies the request's session cookie.
func (s *Server) readSession(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, errNoSession
	}
	enc, sig, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return nil, errSessionInvalid
	}
	b, err1 := base64.RawURLEncoding.DecodeString(enc)
	want, err2 := base64.RawURLEncoding.DecodeString(sig)
	var p sessionPayload
	if err1 != nil || err2 != nil || json.Unmarshal(b, &p) != nil {
		return nil, errSessionInvalid
	}
	for _, t := range s.cfg.Tokens {
		if t.Name != p.Name {
			continue
		}
		key := sessionKey(t.Secret)
		if !hmac.Equal(mac(key, string(b)), want) {
			continue
		}
		if time.Now().Unix() >= p.Expiry {
			return nil, errSessionExpired
		}
		return &session{token: t, payload: p, key: key}, nil
	}
	return nil, errSessionInvalid
}

func (s *Server) secure(r *http.Request) bool { return r.TLS != nil || s.cfg.SecureCookies }

func (s *Server) setCookie(c *gin.Context, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure(c.Request), SameSite: http.SameSiteStrictMode})
}

// SessionInfo is the answer of GET/POST /api/v1/session: who the browser
// is signed in as, and what the console needs to know about this graylane.
type SessionInfo struct {
	// AuthRequired is false when graylane has no tokens (everyone may do
	// everything, as on the API).
	AuthRequired  bool   `json:"authRequired"`
	Authenticated bool   `json:"authenticated"`
	User          string `json:"user,omitempty"`
	Role          Role   `json:"role,omitempty"`
	// Environments is the token's role per environment, when it is scoped
	// to environments.
	Environments map[string]Role `json:"environments,omitempty"`
	CSRF         string          `json:"csrf,omitempty"`
	ExpiresAt    time.Time       `json:"expiresAt,omitempty"`
	// Envs names the declared environments in order (none: this graylane
	// has no environments), so the console shows its Environments pages
	// only when there are some.
	Envs []string `json:"envs,omitempty"`
	// Error says why a cookie the browser sent was refused.
	Error string `json:"error,omitempty"`
	// Version is graylane's version.
	Version string `json:"version"`
}

// getSession tells the console whether it is signed in. It always answers
// 200 so that a signed-out page makes no failed request.
func (s *Server) getSession(c *gin.Context) {
	info := SessionInfo{AuthRequired: len(s.cfg.Tokens) > 0, Version: s.cfg.Version, Envs: s.envNames()}
	if !info.AuthRequired {
		info.Authenticated, info.User, info.Role = true, "anonymous", RoleWrite
		c.JSON(http.StatusOK, info)
		return
	}
	ses, err := s.readSession(c.Request)
	switch {
	case err == nil:
		info.Authenticated, info.User, info.Role, info.CSRF, info.ExpiresAt = true, ses.token.Name, ses.token.roleIn(""), ses.csrf(), ses.expires()
		info.Environments = ses.token.Envs
	case !errors.Is(err, errNoSession):
		info.Error = err.Error()
	}
	c.JSON(http.StatusOK, info)
}

// envNames are the declared environments in order (nil: none).
func (s *Server) envNames() []string {
	if s.cfg.Environments == nil {
		return nil
	}
	var out []string
	for _, e := range s.cfg.Environments.Environments() {
		out = append(out, e.Name)
	}
	return out
}

type loginBody struct {
	Token string `json:"token"`
}

// login exchanges an API token for a session cookie.
func (s *Server) login(c *gin.Context) {
	if !s.sameOrigin(c) {
		return
	}
	if len(s.cfg.Tokens) == 0 {
		s.fail(c, &fieldErr{field: "token", err: fmt.Errorf("%w: this graylane has no tokens; there is nothing to sign in to", errBadRequest)})
		return
	}
	var body loginBody
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 4<<10))
	if err := dec.Decode(&body); err != nil || body.Token == "" {
		s.fail(c, &fieldErr{field: "token", err: fmt.Errorf("%w: want {\"token\": \"...\"}", errBadRequest)})
		return
	}
	for _, t := range s.cfg.Tokens {
		if subtle.ConstantTimeCompare([]byte(t.Secret), []byte(body.Token)) == 1 {
			val, ses := s.newSession(t)
			s.setCookie(c, val, int(s.cfg.SessionTTL.Seconds()))
			c.Set(actorKey, t.Name)
			c.Set(viaKey, viaConsole)
			s.audit(c, "", "console sign-in", nil)
			c.JSON(http.StatusOK, SessionInfo{AuthRequired: true, Authenticated: true, User: t.Name, Role: t.roleIn(""),
				Environments: t.Envs, CSRF: ses.csrf(), ExpiresAt: ses.expires(), Version: s.cfg.Version, Envs: s.envNames()})
			return
		}
	}
	s.log.Warn("console sign-in refused: unknown token", "remote", c.ClientIP())
	c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{Error: "unknown token", Field: "token"})
}

// logout deletes the session cookie.
func (s *Server) logout(c *gin.Context) {
	if !s.sameOrigin(c) {
		return
	}
	if ses, err := s.readSession(c.Request); err == nil {
		if subtle.ConstantTimeCompare([]byte(c.GetHeader(csrfHeader)), []byte(ses.csrf())) != 1 {
			c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: "missing or wrong CSRF token (X-CSRF-Token)"})
			return
		}
		c.Set(actorKey, ses.token.Name)
		c.Set(viaKey, viaConsole)
		s.audit(c, "", "console sign-out", nil)
	}
	s.setCookie(c, "", -1)
	c.JSON(http.StatusOK, SessionInfo{AuthRequired: len(s.cfg.Tokens) > 0, Version: s.cfg.Version})
}

// sameOrigin refuses a browser request sent from another site (the Origin
// header names another host): with no tokens, or with a session cookie,
// the browser would otherwise lend its access to any page. Requests
// without Origin (curl, the CLI) pass.
func (s *Server) sameOrigin(c *gin.Context) bool {
	o := c.GetHeader("Origin")
	if o == "" {
		if c.GetHeader("Sec-Fetch-Site") == "cross-site" {
			c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: "cross-site request refused"})
			return false
		}
		return true
	}
	u, err := url.Parse(o)
	if err != nil || !strings.EqualFold(u.Host, c.Request.Host) {
		c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: fmt.Sprintf("cross-origin request from %q refused", o)})
		return false
	}
	return true
}
