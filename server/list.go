package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

// Page sizes of GET /api/v1/apps.
const (
	// DefaultPageSize is the page size when the request gives no limit.
	DefaultPageSize = 100
	// MaxPageSize is the largest limit accepted.
	MaxPageSize = 1000
)

// AppSummary is one row of GET /api/v1/apps.
type AppSummary = engine.Summary

// AppList is the answer of GET /api/v1/apps.
type AppList struct {
	Apps []AppSummary `json:"apps"`
	// Continue, when set, fetches the next page (?continue=...).
	Continue string `json:"continue,omitempty"`
	// Total counts the apps matching the filter, on every page.
	Total int `json:"total"`
	// Counts are over all apps, whatever the filter.
	Counts engine.Counts `json:"counts"`
	// Limit is the page size used.
	Limit int `json:"limit"`
	// Seq is the change sequence of the list (see GET /api/v1/events).
	Seq uint64 `json:"seq"`
}

var phases = []rollout.Phase{rollout.Progressing, rollout.Paused, rollout.Healthy, rollout.Degraded, rollout.RolledBack}

// continueToken is the opaque position of a listing: the last app sent and
// the filter it was sent under.
type continueToken struct {
	After  string `json:"a"`
	Filter string `json:"f"`
}

// parseQuery reads ?phase=&q=&attention=&limit=&continue=.
func parseQuery(c *gin.Context) (engine.Query, error) {
	q := engine.Query{Limit: DefaultPageSize}
	bad := func(field, format string, args ...any) error {
		return &fieldErr{field: field, err: fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...)}
	}
	if v := c.Query("phase"); v != "" {
		for _, p := range strings.Split(v, ",") {
			found := false
			for _, known := range phases {
				if strings.EqualFold(strings.TrimSpace(p), string(known)) {
					q.Phases = append(q.Phases, known)
					found = true
				}
			}
			if !found {
				return q, bad("phase", "%q is not a phase (%s)", p, phaseList())
			}
		}
	}
	q.Search = strings.TrimSpace(c.Query("q"))
	if len(q.Search) > 253 {
		return q, bad("q", "longer than 253 characters")
	}
	switch a := c.Query("attention"); a {
	case "", "false", "0":
	case "true", "1", "any":
		q.Attention = "any"
	default:
		ok := false
		for _, r := range engine.AttentionReasons {
			if a == r {
				ok = true
			}
		}
		if !ok {
			return q, bad("attention", "%q is not true or a reason (%s)", a, strings.Join(engine.AttentionReasons, ", "))
		}
		q.Attention = a
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return q, bad("limit", "%q is not a number in 1..%d", v, MaxPageSize)
		}
		q.Limit = n
	}
	if v := c.Query("continue"); v != "" {
		var tok continueToken
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err == nil {
			err = json.Unmarshal(b, &tok)
		}
		if err != nil || tok.After == "" {
			return q, bad("continue", "not a token this API gave out")
		}
		if tok.Filter != filterKey(q) {
			return q, bad("continue", "the token belongs to a listing with other filters (phase, q, attention)")
		}
		q.After = tok.After
	}
	return q, nil
}

func phaseList() string {
	var s []string
	for _, p := range phases {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}

// filterKey names a query's filters, so that a token is not reused under
// other ones (its position would mean something else).
func filterKey(q engine.Query) string {
	var ph []string
	for _, p := range q.Phases {
		ph = append(ph, string(p))
	}
	return strings.Join(ph, ",") + "|" + strings.ToLower(q.Search) + "|" + q.Attention
}

// listApps answers a page of apps, filtered on the server (the engine's
// index: no record is loaded).
func (s *Server) listApps(c *gin.Context) {
	q, err := parseQuery(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.cfg.Engine.List(c.Request.Context(), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := AppList{Apps: p.Apps, Total: p.Total, Counts: p.Counts, Limit: q.Limit, Seq: p.Seq}
	if p.More && len(p.Apps) > 0 {
		b, _ := json.Marshal(continueToken{After: p.Apps[len(p.Apps)-1].App, Filter: filterKey(q)})
		out.Continue = base64.RawURLEncoding.EncodeToString(b)
	}
	c.JSON(http.StatusOK, out)
}

// allEvents streams changes of the apps list as Server-Sent Events:
//
//	event: apps   {"seq", "changed": [summary...], "removed": [app...], "counts", "reset"}
//	event: event  one rollout event of any app (with ?events=1)
//
// The first "apps" message carries only the sequence and counts; a client
// then (re)reads the list page it shows. Changes are coalesced (at most
// one "apps" message per 250 ms), so a storm of rollouts costs a client a
// few messages a second; "reset" asks it to read its page again.
func (s *Server) allEvents(c *gin.Context) {
	sig, stop := s.cfg.Engine.SubscribeChanges()
	defer stop()
	var evs <-chan engine.Message
	if c.Query("events") == "1" {
		ch, cancel := s.cfg.Engine.Broker().Subscribe("")
		defer cancel()
		evs = ch
	}
	w := c.Writer
	startSSE(w)
	first := s.cfg.Engine.Changes(^uint64(0))
	seq := first.Seq
	if !sendSSE(w, "apps", engine.Changes{Seq: seq, Counts: first.Counts}) {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	const coalesce = 250 * time.Millisecond
	for {
		select {
		case <-c.Request.Context().Done():
			return
		case <-sig:
			select {
			case <-c.Request.Context().Done():
				return
			case <-time.After(coalesce):
			}
			ch := s.cfg.Engine.Changes(seq)
			if ch.Seq == seq {
				continue
			}
			seq = ch.Seq
			if !sendSSE(w, "apps", ch) {
				return
			}
		case m := <-evs:
			if m.Kind != "event" {
				continue
			}
			if !sendSSE(w, "event", m.Event) {
				return
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			w.Flush()
		}
	}
}

func startSSE(w gin.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()
}

func sendSSE(w gin.ResponseWriter, kind string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b); err != nil {
		return false
	}
	w.Flush()
	return true
}
