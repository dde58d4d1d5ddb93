package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/spec"
)

// specDoc is the answer of GET /api/v1/apps/{app}/spec: the document as
// the centre holds it (comments and layout kept), for an editor.
type specDoc struct {
	App             string `json:"app"`
	Document        string `json:"document"`
	DocumentVersion string `json:"documentVersion"`
	Centre          string `json:"centre"`
}

// getSpec answers the app's stored document, with its version for
// If-Match.
func (s *Server) getSpec(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	en, err := s.cfg.Source.Get(c.Request.Context(), app)
	if err != nil {
		s.fail(c, fmt.Errorf("read %s from %s: %w", app, s.cfg.Source.Name(), err))
		return
	}
	c.Header("ETag", `"`+en.Version+`"`)
	c.JSON(http.StatusOK, specDoc{App: app, Document: string(en.Data), DocumentVersion: en.Version, Centre: s.cfg.Source.Name()})
}

// validation is the answer of POST /api/v1/apps/{app}/validate.
type validation struct {
	Valid  bool       `json:"valid"`
	Errors []fieldMsg `json:"errors,omitempty"`
}

type fieldMsg struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// fieldMsgs lists every field error in err (one item without a field for
// an error that is not about fields).
func fieldMsgs(err error) []fieldMsg {
	var verr *spec.ValidationError
	if errors.As(err, &verr) {
		out := make([]fieldMsg, 0, len(verr.Errors))
		for _, fe := range verr.Errors {
			out = append(out, fieldMsg{Field: fe.Path, Message: fe.Msg})
		}
		return out
	}
	var fe *fieldErr
	if errors.As(err, &fe) {
		return []fieldMsg{{Field: fe.field, Message: fe.err.Error()}}
	}
	return []fieldMsg{{Message: err.Error()}}
}

// validateSpec checks a whole spec as PUT /api/v1/apps/{app} would,
// without writing anything: every error with its field path.
func (s *Server) validateSpec(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	body, ok := s.readSpec(c)
	if !ok {
		return
	}
	if _, err := parseFor(app, body); err != nil {
		c.JSON(http.StatusOK, validation{Errors: fieldMsgs(err)})
		return
	}
	c.JSON(http.StatusOK, validation{Valid: true})
}

// readSpec reads a request body holding a release spec: at most one byte
// more than spec.MaxSpecBytes, so that spec.Parse can say it is too large.
func (s *Server) readSpec(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, spec.MaxSpecBytes+1))
	if err != nil {
		s.fail(c, fmt.Errorf("%w: read body: %v", errBadRequest, err))
		return nil, false
	}
	return body, true
}

// parseFor parses doc as the release spec of app, the app its URL names.
// A document that does not parse or validate, or that names another app,
// is an error wrapping spec.ErrInvalid (HTTP 400) with every field's
// message (a *spec.ValidationError for the app mismatch).
func parseFor(app string, doc []byte) (*spec.Release, error) {
	rel, err := spec.Parse(doc)
	if err != nil {
		return nil, err
	}
	if rel.App != app {
		return nil, &spec.ValidationError{Errors: []spec.FieldError{{Path: "app", Msg: fmt.Sprintf("%q does not match the URL's app %q", rel.App, app)}}}
	}
	return rel, nil
}
