package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// RollbackRequest is the body of POST /api/v1/apps/{app}/rollback. Empty
// (or no body) is the plain rollback command; Revision or Version rolls
// back to a kept revision: its code version and bound config go back to
// the centre together.
type RollbackRequest struct {
	// Revision is the revision number to restore.
	Revision *int `json:"revision,omitempty"`
	// Version picks the newest kept revision of this code version
	// (preferring a promoted one).
	Version string `json:"version,omitempty"`
}

// RollbackResult answers a rollback to a revision.
type RollbackResult struct {
	App string `json:"app"`
	// Revision is the revision restored.
	Revision int    `json:"revision"`
	Version  string `json:"version"`
	// Config is the config identity restored ("" without config).
	Config          string `json:"config,omitempty"`
	Centre          string `json:"centre"`
	DocumentVersion string `json:"documentVersion"`
	// Mode is how the engine rolls it out: fast (no steps) or steps.
	Mode string `json:"mode"`
}

// rollback is POST /apps/{app}/rollback: the plain command without a
// body, a rollback to a revision with one.
func (s *Server) rollback(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(c.Request.Body, 64<<10))
	if err != nil {
		s.fail(c, fmt.Errorf("%w: read body: %v", errBadRequest, err))
		return
	}
	var req RollbackRequest
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(c, &fieldErr{field: "body", err: fmt.Errorf(`%w: want {"revision": N} or {"version": "..."} (or no body): %v`, errBadRequest, err)})
			return
		}
	}
	switch {
	case req.Revision == nil && req.Version == "":
		s.runCommand(c, app, rollout.CmdRollback)
		return
	case req.Revision != nil && req.Version != "":
		s.fail(c, &fieldErr{field: "revision", err: fmt.Errorf("%w: give a revision or a version, not both", errBadRequest)})
		return
	case req.Revision != nil && *req.Revision < 1:
		s.fail(c, &fieldErr{field: "revision", err: fmt.Errorf("%w: %d is not a revision number", errBadRequest, *req.Revision)})
		return
	case req.Version != "":
		if err := spec.CheckVersion(req.Version); err != nil {
			s.fail(c, &fieldErr{field: "version", err: fmt.Errorf("%w: %v", errBadRequest, err)})
			return
		}
	}
	rs, ok := s.recordsService(c)
	if !ok {
		return
	}
	if s.cfg.Writer == nil {
		s.fail(c, errReadOnly)
		return
	}
	target, err := s.rollbackTarget(c.Request.Context(), rs, app, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.annotate(c, app, fmt.Sprintf("rollback to revision %d (%s)", target.Number, target.Version), map[string]any{"revision": target.Number, "version": target.Version})
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		en, err := s.cfg.Source.Get(c.Request.Context(), app)
		if err != nil {
			s.fail(c, fmt.Errorf("read %s from %s: %w", app, s.cfg.Source.Name(), err))
			return
		}
		doc, rel, err := s.rollbackDocument(c.Request.Context(), app, en.Data, target)
		if err != nil {
			s.fail(c, err)
			return
		}
		undo, err := s.intent(c, app, doc, "rollback", target.Number, target.Version)
		if err != nil {
			s.fail(c, err)
			return
		}
		put, err := s.cfg.Writer.Put(c.Request.Context(), app, doc, en.Version)
		if errors.Is(err, configsync.ErrConflict) {
			undo()
			lastErr = err
			continue
		}
		if err != nil {
			undo()
			s.audit(c, app, fmt.Sprintf("rollback to revision %d", target.Number), err)
			s.fail(c, fmt.Errorf("write %s to %s: %w", app, s.cfg.Source.Name(), err))
			return
		}
		s.audit(c, app, fmt.Sprintf("rollback to revision %d (%s)", target.Number, target.Version), nil)
		res := RollbackResult{App: app, Revision: target.Number, Version: target.Version, Centre: s.cfg.Source.Name(),
			DocumentVersion: put.Version, Mode: rel.RollbackMode()}
		if target.Config != nil {
			res.Config = target.Config.Identity
		}
		s.log.Info("rollback to a revision written to the config centre", "app", app, "revision", target.Number, "version", target.Version, "centre", s.cfg.Source.Name())
		c.JSON(http.StatusOK, res)
		return
	}
	s.fail(c, fmt.Errorf("rollback %s: gave up after repeated concurrent edits: %w", app, lastErr))
}

// rollbackTarget finds the revision a request names.
func (s *Server) rollbackTarget(ctx context.Context, rs RecordsService, app string, req RollbackRequest) (records.Revision, error) {
	if req.Revision != nil {
		r, err := rs.Revision(ctx, app, *req.Revision)
		if errors.Is(err, records.ErrNotFound) {
			return r, &fieldErr{field: "revision", err: fmt.Errorf("%w: %w", configsync.ErrNotFound, err)}
		}
		return r, err
	}
	revs, err := rs.Revisions(ctx, app)
	if err != nil {
		return records.Revision{}, fmt.Errorf("revisions of %s: %w", app, err)
	}
	var any *records.Revision
	for i := range revs {
		if revs[i].Version != req.Version {
			continue
		}
		if revs[i].Outcome == records.Promoted {
			return revs[i], nil
		}
		if any == nil {
			any = &revs[i]
		}
	}
	if any != nil {
		return *any, nil
	}
	return records.Revision{}, &fieldErr{field: "version", err: fmt.Errorf("%w: no kept revision of %s has version %s", configsync.ErrNotFound, app, req.Version)}
}

// rollbackDocument is the app's document (as the centre holds it now)
// with target's code version and bound config: the rest (strategy,
// backend, health, config targets) stays as it is. It is refused, with
// the reason, when the result no longer validates (the spec schema or a
// config file's schema changed) or its config would not be target's.
func (s *Server) rollbackDocument(ctx context.Context, app string, current []byte, target records.Revision) ([]byte, *spec.Release, error) {
	refuse := func(err error) error {
		return fmt.Errorf("revision %d (%s) cannot be restored: %w", target.Number, target.Version, err)
	}
	doc, err := SetVersion(current, target.Version)
	if err != nil {
		return nil, nil, refuse(fmt.Errorf("%w: the stored spec of %s cannot be edited: %v", errBadRequest, app, err))
	}
	if target.Config != nil {
		if s.cfg.Config == nil {
			return nil, nil, refuse(fmt.Errorf("%w: it has bound config but config-in-step is not configured", errBadRequest))
		}
		h, ok, err := s.cfg.Config.Entry(ctx, app, target.Config.Identity)
		if err != nil {
			return nil, nil, refuse(err)
		}
		if !ok {
			return nil, nil, refuse(fmt.Errorf("%w: the config history no longer has %s, its bound config", errBadRequest, target.Config.Identity))
		}
		files, section, err := restoredFiles(current, target.Spec, h.Bundle.Files)
		if err != nil {
			return nil, nil, refuse(err)
		}
		if doc, err = setConfigFiles(doc, files, section); err != nil {
			return nil, nil, refuse(fmt.Errorf("%w: %v", errBadRequest, err))
		}
	}
	rel, err := spec.Parse(doc)
	if err != nil {
		return nil, nil, refuse(err)
	}
	if rel.App != app {
		return nil, nil, refuse(&fieldErr{field: "app", err: fmt.Errorf("%w: the stored spec names app %q", errBadRequest, rel.App)})
	}
	if rel.Config != nil && s.cfg.Config != nil {
		b, err := s.cfg.Config.Resolve(ctx, rel)
		if err != nil {
			return nil, nil, refuse(err)
		}
		if target.Config != nil && b.Digest != target.Config.Digest {
			return nil, nil, refuse(fmt.Errorf("%w: its config would come out as %.12s, not the %.12s it was released with", errBadRequest, b.Digest, target.Config.Digest))
		}
	}
	return doc, rel, nil
}

// restoredFiles is the config.files list of the revision: names, formats
// and schemas from its spec, contents from the config history. A file
// that the current spec also has keeps the current schema (the contract
// the config must meet today). section is the revision's whole config
// section, used when the current document has none.
func restoredFiles(current []byte, revSpec string, bundle []configwire.File) ([]any, map[string]any, error) {
	rev, err := asMap([]byte(revSpec))
	if err != nil || rev == nil {
		return nil, nil, fmt.Errorf("%w: its spec record cannot be read: %v", errBadRequest, err)
	}
	schemas := map[string]any{}
	if cur, err := asMap(current); err == nil {
		for _, f := range configFilesOf(cur) {
			if fm, ok := f.(map[string]any); ok && fm["schema"] != nil {
				schemas[fmt.Sprint(fm["name"])] = fm["schema"]
			}
		}
	}
	meta := map[string]map[string]any{}
	for _, f := range configFilesOf(rev) {
		if fm, ok := f.(map[string]any); ok {
			meta[fmt.Sprint(fm["name"])] = fm
		}
	}
	files := make([]any, 0, len(bundle))
	for _, b := range bundle {
		f := map[string]any{"name": b.Name, "format": b.Format, "content": b.Content}
		if m := meta[b.Name]; m != nil && m["schema"] != nil {
			f["schema"] = m["schema"]
		}
		if sch, ok := schemas[b.Name]; ok {
			f["schema"] = sch
		}
		files = append(files, f)
	}
	section, _ := rev["config"].(map[string]any)
	if section == nil {
		section = map[string]any{}
	}
	return files, section, nil
}

// setConfigFiles replaces config.files of doc (YAML keeps its layout and
// comments elsewhere; JSON stays JSON), or adds the whole config section
// when doc has none.
func setConfigFiles(doc []byte, files []any, section map[string]any) ([]byte, error) {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(trimmed))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return nil, err
		}
		cfg, ok := m["config"].(map[string]any)
		if !ok {
			section["files"] = files
			m["config"] = section
		} else {
			cfg["files"] = files
		}
		return json.MarshalIndent(m, "", "  ")
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("spec is not a mapping")
	}
	var filesNode yaml.Node
	if err := filesNode.Encode(files); err != nil {
		return nil, err
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "config" || m.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		cfg := m.Content[i+1]
		for j := 0; j+1 < len(cfg.Content); j += 2 {
			if cfg.Content[j].Value == "files" {
				cfg.Content[j+1] = &filesNode
				return encodeYAML(&root)
			}
		}
		cfg.Content = append(cfg.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "files"}, &filesNode)
		return encodeYAML(&root)
	}
	section["files"] = files
	var sec yaml.Node
	if err := sec.Encode(section); err != nil {
		return nil, err
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "config"}, &sec)
	return encodeYAML(&root)
}

// asMap decodes a YAML or JSON document into a generic map.
func asMap(doc []byte) (map[string]any, error) {
	j, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	// plain numbers (not json.Number): they are encoded back into YAML
	// as numbers (a schema's minLength: 1 stays a number)
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func configFilesOf(m map[string]any) []any {
	cfg, _ := m["config"].(map[string]any)
	files, _ := cfg["files"].([]any)
	return files
}
