// Package specdoc edits a release document as it is stored in a config
// centre — YAML keeping its comments and layout, JSON staying JSON — for
// the writes graylane makes on an operator's behalf: a new version, and a
// promotion's bundle (version and config files).
//
// Entry points: SetVersion and SetBundle.
package specdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/graylane/graylane/configwire"
)

// SetVersion returns doc with its top-level version field set to v.
func SetVersion(doc []byte, v string) ([]byte, error) {
	if isJSON(doc) {
		m, err := decodeJSON(doc)
		if err != nil {
			return nil, err
		}
		m["version"] = v
		return json.MarshalIndent(m, "", "  ")
	}
	root, m, err := decodeYAML(doc)
	if err != nil {
		return nil, err
	}
	setScalar(m, "version", v)
	return encodeYAML(root)
}

// SetBundle returns doc with a release bundle written into it: version
// set to version, and each file of config.files given the bundle's
// content (and format) of the same name; files the document lists that
// the bundle lacks are removed, files the bundle adds are appended. Every
// other field — replicas, strategy, backend, config.targets,
// config.overlay, a file's schema — stays the document's own. A bundle
// with files needs a document with a config section (its targets say
// where that environment's instances read config); a bundle without files
// needs a document without config files.
func SetBundle(doc []byte, version string, files []configwire.File) ([]byte, error) {
	if isJSON(doc) {
		m, err := decodeJSON(doc)
		if err != nil {
			return nil, err
		}
		m["version"] = version
		cfg, _ := m["config"].(map[string]any)
		if err := checkConfig(cfg != nil, len(files)); err != nil {
			return nil, err
		}
		if cfg != nil {
			old, _ := cfg["files"].([]any)
			cfg["files"] = mergeFilesJSON(old, files)
		}
		return json.MarshalIndent(m, "", "  ")
	}
	root, m, err := decodeYAML(doc)
	if err != nil {
		return nil, err
	}
	setScalar(m, "version", version)
	cfg := child(m, "config")
	if cfg != nil && cfg.Kind != yaml.MappingNode {
		cfg = nil
	}
	if err := checkConfig(cfg != nil, len(files)); err != nil {
		return nil, err
	}
	if cfg != nil {
		old := child(cfg, "files")
		list := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		byName := map[string]*yaml.Node{}
		if old != nil && old.Kind == yaml.SequenceNode {
			for _, f := range old.Content {
				if f.Kind == yaml.MappingNode {
					if n := child(f, "name"); n != nil {
						byName[n.Value] = f
					}
				}
			}
		}
		for _, f := range files {
			item := byName[f.Name]
			if item == nil {
				item = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				setScalar(item, "name", f.Name)
			}
			setScalar(item, "format", f.Format)
			del(item, "contentRef")
			setScalar(item, "content", f.Content)
			if c := child(item, "content"); c != nil && bytes.ContainsRune([]byte(f.Content), '\n') {
				c.Style = yaml.LiteralStyle
			}
			list.Content = append(list.Content, item)
		}
		if old != nil {
			*old = *list
		} else {
			cfg.Content = append(cfg.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "files"}, list)
		}
	}
	return encodeYAML(root)
}

func checkConfig(hasConfig bool, files int) error {
	switch {
	case files > 0 && !hasConfig:
		return errors.New("the bundle has config files but this environment's document has no config section: add config.targets (where its instances read config) to it first")
	case files == 0 && hasConfig:
		return errors.New("the bundle has no config files but this environment's document has a config section: remove it, or release config in the source environment first")
	}
	return nil
}

func mergeFilesJSON(old []any, files []configwire.File) []any {
	byName := map[string]map[string]any{}
	for _, f := range old {
		if m, ok := f.(map[string]any); ok {
			byName[fmt.Sprint(m["name"])] = m
		}
	}
	out := make([]any, 0, len(files))
	for _, f := range files {
		item := byName[f.Name]
		if item == nil {
			item = map[string]any{"name": f.Name}
		}
		delete(item, "contentRef")
		item["format"], item["content"] = f.Format, f.Content
		out = append(out, item)
	}
	return out
}

func isJSON(doc []byte) bool {
	t := bytes.TrimSpace(doc)
	return len(t) > 0 && t[0] == '{'
}

func decodeJSON(doc []byte) (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(bytes.TrimSpace(doc)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

func decodeYAML(doc []byte) (*yaml.Node, *yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, nil, err
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("spec is not a mapping")
	}
	return &root, root.Content[0], nil
}

// child returns the value of key in mapping m (nil when absent).
func child(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func del(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// setScalar sets key of mapping m to the string v (added when absent).
func setScalar(m *yaml.Node, key, v string) {
	if n := child(m, key); n != nil {
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, LineComment: n.LineComment}
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
}

func encodeYAML(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}
