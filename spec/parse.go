package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxSpecBytes bounds the size of one release document.
const MaxSpecBytes = 1 << 20

// Parse decodes a release from YAML or JSON, rejects unknown fields and
// wrong types with their field paths, applies defaults and validates it.
// The returned error is a *ValidationError (errors.Is(err, ErrInvalid)).
func Parse(data []byte) (*Release, error) {
	if len(data) > MaxSpecBytes {
		return nil, &ValidationError{Errors: []FieldError{{Msg: fmt.Sprintf("spec is %d bytes, over the %d byte limit", len(data), MaxSpecBytes)}}}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &ValidationError{Errors: []FieldError{{Msg: "spec is empty"}}}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &ValidationError{Errors: []FieldError{{Msg: "not valid YAML or JSON: " + err.Error()}}}
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, &ValidationError{Errors: []FieldError{{Msg: "not valid JSON: " + err.Error()}}}
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, &ValidationError{Errors: []FieldError{{Msg: "spec must be a mapping (app, version, strategy, backend, ...)"}}}
	}
	var e errs
	checkShape(generic, reflect.TypeOf(Release{}), "", &e)
	if err := e.err(); err != nil {
		return nil, err
	}
	var r Release
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		// checkShape should have caught everything; report what is left.
		return nil, &ValidationError{Errors: []FieldError{{Msg: err.Error()}}}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// shaped is implemented by leaf types with custom JSON forms; it lists the
// JSON kinds they accept.
type shaped interface{ jsonKinds() []string }

var (
	shapedType     = reflect.TypeOf((*shaped)(nil)).Elem()
	rawMessageType = reflect.TypeOf(json.RawMessage(nil))
)

// checkShape walks a decoded JSON value beside the Go type it will be decoded
// into and reports unknown fields and kind mismatches with full paths
// (encoding/json reports neither with list indexes).
func checkShape(v any, t reflect.Type, path string, e *errs) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return // null leaves the field at its zero value
	}
	if t == rawMessageType {
		return // any JSON value; its owner validates it (config.overlay)
	}
	if reflect.PointerTo(t).Implements(shapedType) {
		kinds := reflect.New(t).Interface().(shaped).jsonKinds()
		k := jsonKind(v)
		for _, want := range kinds {
			if want == k {
				// Let the type's own decoder judge the value.
				b, _ := json.Marshal(v)
				if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
					e.add(path, "%v", err)
				}
				return
			}
		}
		e.add(path, "got %s, want %s", k, strings.Join(kinds, " or "))
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			e.add(path, "got %s, want a mapping", jsonKind(v))
			return
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				e.add(join(path, k), "unknown field (known: %s)", knownList(fields))
				continue
			}
			checkShape(m[k], ft, join(path, k), e)
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			e.add(path, "got %s, want a list", jsonKind(v))
			return
		}
		for i, item := range l {
			checkShape(item, t.Elem(), index(path, i), e)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			e.add(path, "got %s, want a mapping", jsonKind(v))
			return
		}
		for k, item := range m {
			checkShape(item, t.Elem(), join(path, k), e)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			e.add(path, "got %s, want a string", jsonKind(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			e.add(path, "got %s, want true or false", jsonKind(v))
		}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		n, ok := v.(float64)
		if !ok {
			e.add(path, "got %s, want a whole number", jsonKind(v))
		} else if n != math.Trunc(n) {
			e.add(path, "%v is not a whole number", n)
		} else if math.Abs(n) > 1<<31 {
			e.add(path, "%v is out of range", n)
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(float64); !ok {
			e.add(path, "got %s, want a number", jsonKind(v))
		}
	case reflect.Interface:
		// any value is fine
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "mapping"
	}
	return fmt.Sprintf("%T", v)
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		out[name] = f.Type
	}
	return out
}

func knownList(fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
