package server

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/graylane/graylane/spec"
)

// schemas generates OpenAPI 3.0 schemas from the Go types the handlers
// encode, so the document describes exactly what encoding/json writes:
// fields from json tags (embedded structs flattened), a field without
// omitempty is required, nil-able ones (pointers, slices, maps) are
// nullable, and a struct allows no other properties. Named structs become
// components (#/components/schemas/pkg.Type).
type schemas struct {
	components map[string]any
}

var (
	timeType      = reflect.TypeOf(time.Time{})
	durationType  = reflect.TypeOf(time.Duration(0))
	rawType       = reflect.TypeOf(json.RawMessage(nil))
	specDuration  = reflect.TypeOf(spec.Duration{})
	specIntOrPct  = reflect.TypeOf(spec.IntOrPercent{})
	anyInterface  = reflect.TypeOf((*any)(nil)).Elem()
	schemaAnyJSON = map[string]any{"nullable": true}
)

func newSchemas() *schemas { return &schemas{components: map[string]any{}} }

// of returns the schema of values of type t.
func (g *schemas) of(t reflect.Type) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	case rawType, anyInterface:
		return schemaAnyJSON
	case specDuration:
		return map[string]any{"type": "string", "description": "a Go duration: 1m30s"}
	case specIntOrPct:
		return map[string]any{"oneOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "string", "pattern": "^[0-9]+%$"}}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.of(t.Elem()))
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Interface:
		return schemaAnyJSON
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t)
		}
		name := componentName(t)
		if _, ok := g.components[name]; !ok {
			g.components[name] = nil // placeholder: recursion
			g.components[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return schemaAnyJSON
}

func componentName(t reflect.Type) string {
	pkg := t.PkgPath()
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		pkg = pkg[i+1:]
	}
	return pkg + "." + t.Name()
}

// nullable allows null besides s.
func nullable(s map[string]any) map[string]any {
	if _, ok := s["$ref"]; ok {
		return map[string]any{"nullable": true, "allOf": []any{s}}
	}
	if len(s) == 0 {
		return s
	}
	out := map[string]any{}
	for k, v := range s {
		out[k] = v
	}
	out["nullable"] = true
	return out
}

// object is a struct's schema: its JSON fields.
func (g *schemas) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func (g *schemas) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != timeType {
				g.fields(ft, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := strings.Contains(opts, "omitempty")
		s := g.of(f.Type)
		switch f.Type.Kind() {
		case reflect.Slice, reflect.Map:
			if !omit && f.Type != rawType {
				s = nullable(s)
			}
		}
		props[name] = s
		if !omit {
			*required = append(*required, name)
		}
	}
}
