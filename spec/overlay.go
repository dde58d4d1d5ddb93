package spec

// Overlays: an environment's own values laid over a release bundle's
// config files (config.overlay), so that one bundle — the same code
// version and the same file bytes — runs in several environments that
// differ only in declared keys:
//
//	config:
//	  files:
//	    - {name: application.yaml, content: "db: {url: jdbc:test}\n"}
//	  overlay:
//	    application.yaml: {db: {url: jdbc:prod}}   # RFC 7386 merge patch
//	    limits.properties: {pool: 8}              # key replacement
//
//   - yaml and json files take an RFC 7386 JSON merge patch: an object
//     whose members replace the file's members of the same name, recursing
//     into objects; a null member removes the file's member; arrays and
//     scalars replace whole. The file is merged as a node tree, so members
//     keep their order and a YAML file keeps its comments; members the
//     patch does not name are left as they are (the file is re-rendered,
//     so its layout may be normalised).
//   - properties files take key replacement: a flat object of keys to
//     string (or number, boolean) values. A key the file has is replaced
//     on its own line, every other line keeping its bytes; a key it lacks
//     is appended; null removes the key.
//
// An empty overlay (absent, null or {}) leaves the file's bytes as they
// are. The merged ("effective") file is what graylane writes to the
// config targets and what instances report the checksum of; the bundle's
// own files are what a promotion carries to the next environment.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/graylane/graylane/internal/properties"
)

// ErrOverlay is matched (errors.Is) by every error about an overlay's
// shape or a file the overlay cannot be laid on.
var ErrOverlay = errors.New("invalid overlay")

func overlayErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrOverlay, fmt.Sprintf(format, args...))
}

// EmptyOverlay reports whether patch changes nothing: absent, null or {}.
func EmptyOverlay(patch json.RawMessage) bool {
	t := bytes.TrimSpace(patch)
	if len(t) == 0 || string(t) == "null" {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(t, &m) == nil && len(m) == 0
}

// CheckOverlay reports whether patch has the shape format needs: an object for
// yaml and json; a flat object of scalar or null values for properties.
func CheckOverlay(format string, patch json.RawMessage) error {
	if EmptyOverlay(patch) {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(patch, &m); err != nil {
		return overlayErr("an overlay is an object (an RFC 7386 merge patch for yaml and json, keys to values for properties): %v", err)
	}
	switch format {
	case FormatYAML, FormatJSON:
		return nil
	case FormatProperties:
		for k, v := range m {
			if k == "" {
				return overlayErr("a properties key may not be empty")
			}
			if _, _, err := overlayPropertyValue(v); err != nil {
				return overlayErr("key %q: %v", k, err)
			}
		}
		return nil
	}
	return overlayErr("format %q takes no overlay (yaml, json, properties)", format)
}

// ApplyOverlay returns content with patch laid over it (see Overlay).
func ApplyOverlay(format string, content []byte, patch json.RawMessage) ([]byte, error) {
	if err := CheckOverlay(format, patch); err != nil {
		return nil, err
	}
	if EmptyOverlay(patch) {
		return content, nil
	}
	switch format {
	case FormatYAML:
		return applyYAML(content, patch)
	case FormatJSON:
		return applyJSON(content, patch)
	default:
		return applyProperties(content, patch)
	}
}

// patchNode decodes a JSON patch into a YAML node tree, keeping member
// order and scalar types.
func patchNode(patch json.RawMessage) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(patch, &doc); err != nil {
		return nil, overlayErr("decode patch: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, overlayErr("patch is not one object")
	}
	return doc.Content[0], nil
}

// mergePatch is RFC 7386 MergePatch(target, patch) over node trees. target may
// be nil (absent).
func mergePatch(target, patch *yaml.Node) *yaml.Node {
	if patch.Kind != yaml.MappingNode {
		return dropNulls(patch)
	}
	if target == nil || target.Kind != yaml.MappingNode {
		target = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	for i := 0; i+1 < len(patch.Content); i += 2 {
		k, v := patch.Content[i], patch.Content[i+1]
		at := -1
		for j := 0; j+1 < len(target.Content); j += 2 {
			if target.Content[j].Value == k.Value {
				at = j
				break
			}
		}
		if isNull(v) {
			if at >= 0 {
				target.Content = append(target.Content[:at], target.Content[at+2:]...)
			}
			continue
		}
		if at >= 0 {
			target.Content[at+1] = mergePatch(target.Content[at+1], v)
			continue
		}
		target.Content = append(target.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.Value}, mergePatch(nil, v))
	}
	return target
}

// dropNulls drops the null members of a patch value that lands where nothing
// was (RFC 7386: MergePatch({}, value) removes nulls inside objects).
func dropNulls(n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isNull(n.Content[i+1]) {
			continue
		}
		out.Content = append(out.Content, n.Content[i], dropNulls(n.Content[i+1]))
	}
	return out
}

// plainStyle drops the JSON quoting style of a patch's nodes, so that YAML
// renders them as it would its own (quoted only where YAML needs it).
func plainStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		plainStyle(c)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// overlayRoot parses a yaml or json file into its top node; an empty file is an
// empty mapping.
func overlayRoot(content []byte, what string) (*yaml.Node, *yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, nil, overlayErr("parse the %s file: %v", what, err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil, overlayErr("the %s file is not one document", what)
	}
	return &doc, doc.Content[0], nil
}

func applyYAML(content []byte, patch json.RawMessage) ([]byte, error) {
	p, err := patchNode(patch)
	if err != nil {
		return nil, err
	}
	doc, top, err := overlayRoot(content, "yaml")
	if err != nil {
		return nil, err
	}
	plainStyle(p)
	doc.Content[0] = mergePatch(top, p)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("render the merged yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func applyJSON(content []byte, patch json.RawMessage) ([]byte, error) {
	if !json.Valid(content) {
		return nil, overlayErr("the json file is not valid JSON")
	}
	p, err := patchNode(patch)
	if err != nil {
		return nil, err
	}
	_, top, err := overlayRoot(content, "json")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := writeOverlayJSON(&b, mergePatch(top, p), ""); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// writeOverlayJSON renders a node tree parsed from JSON (or a JSON patch) as
// indented JSON, members in order.
func writeOverlayJSON(b *bytes.Buffer, n *yaml.Node, indent string) error {
	in := indent + "  "
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteString("{\n")
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, _ := json.Marshal(n.Content[i].Value)
			b.WriteString(in)
			b.Write(k)
			b.WriteString(": ")
			if err := writeOverlayJSON(b, n.Content[i+1], in); err != nil {
				return err
			}
			if i+2 < len(n.Content) {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteString("[\n")
		for i, c := range n.Content {
			b.WriteString(in)
			if err := writeOverlayJSON(b, c, in); err != nil {
				return err
			}
			if i+1 < len(n.Content) {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			b.WriteString("null")
		case "!!bool", "!!int", "!!float":
			if !json.Valid([]byte(n.Value)) {
				return overlayErr("%q is not a JSON value", n.Value)
			}
			b.WriteString(n.Value)
		default:
			s, _ := json.Marshal(n.Value)
			b.Write(s)
		}
	default:
		return overlayErr("a JSON file holds no YAML aliases or documents")
	}
	return nil
}

// overlayPropertyValue is the string a properties overlay value sets; remove is
// true for null.
func overlayPropertyValue(v json.RawMessage) (value string, remove bool, err error) {
	t := bytes.TrimSpace(v)
	switch {
	case string(t) == "null":
		return "", true, nil
	case len(t) > 0 && t[0] == '"':
		var s string
		err := json.Unmarshal(t, &s)
		return s, false, err
	case string(t) == "true", string(t) == "false":
		return string(t), false, nil
	}
	var n json.Number
	if err := json.Unmarshal(t, &n); err != nil {
		return "", false, errors.New("a properties overlay value is a string, number, boolean or null (objects and arrays do not fit a properties file)")
	}
	if _, err := strconv.ParseFloat(n.String(), 64); err != nil {
		return "", false, err
	}
	return n.String(), false, nil
}

// applyProperties replaces, appends or removes the patch's keys, line by
// line; lines of other keys, comments and blank lines keep their bytes.
func applyProperties(content []byte, patch json.RawMessage) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(patch, &m); err != nil {
		return nil, overlayErr("decode patch: %v", err)
	}
	// the patch's keys in their order, for appending
	var changes []properties.Change
	dec := json.NewDecoder(bytes.NewReader(patch))
	if _, err := dec.Token(); err != nil {
		return nil, overlayErr("decode patch: %v", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, overlayErr("decode patch: %v", err)
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, overlayErr("decode patch: %v", err)
		}
		value, remove, err := overlayPropertyValue(raw)
		if err != nil {
			return nil, overlayErr("key %q: %v", key, err)
		}
		changes = append(changes, properties.Change{Key: key, Value: value, Remove: remove})
	}
	return properties.Replace(content, changes), nil
}

// validateOverlay checks config.overlay: every entry names a file of the
// section and fits its format; with the file's content known, the merged
// file must parse and satisfy the file's schema.
func (c *Config) validateOverlay(p string, contents map[string]string, e *errs) {
	if len(c.Overlay) == 0 {
		return
	}
	names := make([]string, 0, len(c.Overlay))
	for n := range c.Overlay {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		op := join(join(p, "overlay"), name)
		f := c.File(name)
		if f == nil {
			e.add(op, "names no file of config.files")
			continue
		}
		format := f.FileFormat()
		if err := CheckOverlay(format, c.Overlay[name]); err != nil {
			e.add(op, "%v", err)
			continue
		}
		data, ok := contents[name]
		if !ok {
			continue // contentRef: checked once its content is read
		}
		merged, err := ApplyOverlay(format, []byte(data), c.Overlay[name])
		if err != nil {
			e.add(op, "%v", err)
			continue
		}
		var sch *jsonschema.Schema
		if f.Schema != nil {
			if sch, err = CompileConfigSchema(f.Schema); err != nil {
				continue // reported on the file
			}
		}
		if len(merged) > MaxConfigFileBytes {
			e.add(op, "the merged file is %d bytes, over the %d byte limit of one file", len(merged), MaxConfigFileBytes)
			continue
		}
		if err := CheckConfigContent(format, merged, sch); err != nil {
			e.add(op, "the merged file: %v", err)
		}
	}
}

// Effective returns the file's content with the section's overlay laid
// over it (the content itself when the section has no overlay for it).
func (c *Config) Effective(name, format string, content []byte) ([]byte, error) {
	patch, ok := c.Overlay[name]
	if !ok {
		return content, nil
	}
	return ApplyOverlay(format, content, patch)
}
