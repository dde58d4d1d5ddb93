// Package redact hides credentials in what graylane records or shows to
// readers without a write token: values whose key looks like a credential
// (password, secret, token, apiKey, accessKey, privateKey, credential,
// authorization, ...) or is named explicitly, in YAML, JSON and
// .properties text and in decoded JSON values. Entry points: Text, Value,
// Sensitive.
package redact

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Mask replaces a hidden value.
const Mask = "<redacted>"

// credential matches key names that hold credentials.
var credential = regexp.MustCompile(`(?i)(passw(or)?d|passwd|pwd|secret|token|api[-_.]?key|access[-_.]?key|private[-_.]?key|credential|authorization|auth[-_.]?header|session[-_.]?key|signing[-_.]?key|client[-_.]?secret|dsn|connection[-_.]?string)`)

// reference matches key names that name where a credential is, not the
// credential itself (secretEnv, tokenFile, passwordRef).
var reference = regexp.MustCompile(`(Env|Ref|File|Path|Name)$`)

// Sensitive reports whether a key name looks like it holds a credential,
// or is one of extra (exact names or dotted paths' last element).
func Sensitive(key string, extra ...string) bool {
	for _, x := range extra {
		if x == key || strings.HasSuffix(key, "."+x) || strings.HasSuffix(x, "."+key) {
			return true
		}
	}
	return credential.MatchString(key) && !reference.MatchString(key)
}

// Text redacts credential-looking values in a document of the given
// format ("yaml", "json", "properties"; "" guesses from the content). A
// document that cannot be parsed is redacted line by line ("key: value"
// and "key=value" lines). extra names more keys to hide.
func Text(format, s string, extra ...string) string {
	switch format {
	case "properties":
		return properties(s, extra)
	case "json":
		var v any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if d.Decode(&v) == nil {
			b, err := json.MarshalIndent(Value(v, extra...), "", "  ")
			if err == nil {
				return string(b) + "\n"
			}
		}
		return lines(s, extra)
	default:
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(s), &root); err != nil || len(root.Content) == 0 {
			return lines(s, extra)
		}
		if !node(&root, extra) {
			return s
		}
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if enc.Encode(&root) != nil {
			return lines(s, extra)
		}
		return b.String()
	}
}

// node masks the values of sensitive keys in a YAML tree; it reports
// whether anything changed.
func node(n *yaml.Node, extra []string) bool {
	changed := false
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			changed = node(c, extra) || changed
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if Sensitive(k.Value, extra...) && v.Kind == yaml.ScalarNode && v.Value != "" {
				v.Value, v.Tag, v.Style = Mask, "!!str", 0
				changed = true
				continue
			}
			changed = node(v, extra) || changed
		}
	}
	return changed
}

// Value returns v (a decoded JSON value) with the values of sensitive
// keys masked. v is not modified.
func Value(v any, extra ...string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if _, scalar := e.(map[string]any); !scalar && Sensitive(k, extra...) && e != nil && e != "" {
				if _, list := e.([]any); !list {
					out[k] = Mask
					continue
				}
			}
			out[k] = Value(e, extra...)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Value(e, extra...)
		}
		return out
	}
	return v
}

func properties(s string, extra []string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "!") {
			out = append(out, l)
			continue
		}
		i := strings.IndexAny(t, "=:")
		if i > 0 && Sensitive(strings.TrimSpace(t[:i]), extra...) {
			out = append(out, t[:i+1]+Mask)
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// linePattern is "key: value" or "key=value", as in YAML, properties and
// env files, possibly indented or quoted.
var linePattern = regexp.MustCompile(`^(\s*[-]?\s*"?([A-Za-z0-9_.\-]+)"?\s*[:=]\s*)(.+)$`)

// lines redacts line by line: for text no parser accepts.
func lines(s string, extra []string) string {
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		if m := linePattern.FindStringSubmatch(l); m != nil && Sensitive(m[2], extra...) {
			ls[i] = m[1] + Mask
		}
	}
	return strings.Join(ls, "\n")
}

// Line redacts one line of a diff or a log ("+  password: x" keeps its
// marker and key).
func Line(l string, extra ...string) string {
	if l == "" {
		return l
	}
	marker := ""
	if strings.ContainsRune("+- ", rune(l[0])) {
		marker, l = l[:1], l[1:]
	}
	return marker + lines(l, extra)
}

// Diff redacts every line of a unified diff.
func Diff(d string, extra ...string) string {
	ls := strings.Split(d, "\n")
	for i, l := range ls {
		if strings.HasPrefix(l, "---") || strings.HasPrefix(l, "+++") || strings.HasPrefix(l, "@@") {
			continue
		}
		ls[i] = Line(l, extra...)
	}
	return strings.Join(ls, "\n")
}
