// Config file contents: parsing each format (properties through
// internal/properties), JSON Schema compilation and checks with errors
// that name the line or the JSON pointer.

package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/graylane/graylane/internal/properties"
)

// denyLoader refuses every URL: schemas are self-contained, a $ref may not
// make graylane read files or the network.
type denyLoader struct{}

func (denyLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("remote $ref %s is not loaded: config schemas must be self-contained", url)
}

// CompileConfigSchema compiles a JSON Schema given as a decoded YAML/JSON
// value, with github.com/santhosh-tekuri/jsonschema/v6. Format keywords
// are asserted; remote references are refused.
func CompileConfigSchema(schema any) (*jsonschema.Schema, error) {
	doc, err := toJSONValue(schema)
	if err != nil {
		return nil, fmt.Errorf("not a JSON Schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(denyLoader{})
	c.AssertFormat()
	const url = "mem:///graylane/config-schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("not a JSON Schema: %v", err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("not a valid JSON Schema: %s", oneLine(err.Error()))
	}
	return sch, nil
}

// toJSONValue converts a decoded value to the form jsonschema expects
// (numbers as json.Number).
func toJSONValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// CheckConfigContent parses data in its format and, if sch is set, checks
// it against the schema. The error names the line (parse errors) or the
// JSON pointer inside the document (schema errors).
func CheckConfigContent(format string, data []byte, sch *jsonschema.Schema) error {
	if !utf8.Valid(data) {
		return errors.New("is not valid UTF-8")
	}
	v, err := ParseConfigContent(format, data)
	if err != nil {
		return err
	}
	if sch == nil {
		return nil
	}
	doc, err := toJSONValue(v)
	if err != nil {
		return fmt.Errorf("cannot be checked against the schema: %v", err)
	}
	if err := sch.Validate(doc); err != nil {
		var verr *jsonschema.ValidationError
		if errors.As(err, &verr) {
			return fmt.Errorf("does not match the schema: %s", schemaLeaves(verr))
		}
		return fmt.Errorf("does not match the schema: %s", oneLine(err.Error()))
	}
	return nil
}

var schemaPrinter = message.NewPrinter(language.English)

// schemaLeaves lists the innermost schema errors as "at /a/b: message".
func schemaLeaves(e *jsonschema.ValidationError) string {
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			ptr := "/" + strings.Join(e.InstanceLocation, "/")
			out = append(out, fmt.Sprintf("at %s: %s", ptr, e.ErrorKind.LocalizedString(schemaPrinter)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(e)
	sort.Strings(out)
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ParseConfigContent parses a config file. yaml and json give the decoded
// document; properties gives a map of keys to string values.
func ParseConfigContent(format string, data []byte) (any, error) {
	switch format {
	case FormatYAML:
		var n any // yaml.v3 into a value: catches duplicate keys with their lines
		if err := yaml.Unmarshal(data, &n); err != nil {
			return nil, fmt.Errorf("is not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		var v any
		js, err := k8syaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("is not valid YAML: %v", err)
		}
		if err := json.Unmarshal(js, &v); err != nil {
			return nil, fmt.Errorf("is not valid YAML: %v", err)
		}
		return v, nil
	case FormatJSON:
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("is not valid JSON: %s", jsonErr(data, err))
		}
		if dec.More() {
			return nil, errors.New("is not valid JSON: more than one value")
		}
		return v, nil
	case FormatProperties:
		p, err := properties.Parse(data)
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, len(p.Keys))
		for k, v := range p.Values {
			m[k] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

func jsonErr(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, int(se.Offset))
		return fmt.Sprintf("line %d column %d: %v", line, col, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		line, _ := lineCol(data, len(data))
		return fmt.Sprintf("line %d: unexpected end of the document", line)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		line, col := lineCol(data, int(te.Offset))
		return fmt.Sprintf("line %d column %d: %v", line, col, te)
	}
	return err.Error()
}

func lineCol(data []byte, off int) (int, int) {
	if off > len(data) {
		off = len(data)
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}
