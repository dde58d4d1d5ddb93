package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/graylane/graylane/internal/properties"
)

// RFC 7386, Appendix A, for the cases whose target is an object (a config
// file is one): each patch applied to each target gives the result, as
// compact JSON.
func TestRFC7386Examples(t *testing.T) {
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		got, err := ApplyOverlay(FormatJSON, []byte(tc.target), json.RawMessage(tc.patch))
		if err != nil {
			t.Fatalf("ApplyOverlayOverlay(%s, %s): %v", tc.target, tc.patch, err)
		}
		if c := compact(t, got); c != tc.want {
			t.Errorf("ApplyOverlayOverlay(%s, %s) = %s, want %s", tc.target, tc.patch, c, tc.want)
		}
	}
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var v json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// A YAML file keeps its comments, its member order and the members the
// patch does not name; nested members are merged, not replaced.
func TestYAMLKeepsOrderAndComments(t *testing.T) {
	file := `# shop settings
greeting: hello   # shown on /
db:
  url: jdbc:mysql://test-db/shop
  pool: 5
features: [a, b]
`
	got, err := ApplyOverlay(FormatYAML, []byte(file), json.RawMessage(`{"db":{"url":"jdbc:mysql://prod-db/shop"},"features":null,"region":"sh"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `# shop settings
greeting: hello # shown on /
db:
  url: jdbc:mysql://prod-db/shop
  pool: 5
region: sh
`
	if string(got) != want {
		t.Fatalf("merged yaml:\n%s\nwant:\n%s", got, want)
	}
}

// Properties: a replaced key changes its own line only; every other line
// keeps its bytes; new keys are appended in the patch's order; null
// removes a key (with its continuation lines).
func TestPropertiesKeyReplacement(t *testing.T) {
	file := "# db\r\ndb.url = jdbc:test\r\nlong=a \\\r\n  b\r\n! keep me\r\npool:5\r\n"
	got, err := ApplyOverlay(FormatProperties, []byte(file), json.RawMessage(`{"pool":8,"zone":"sh-1","long":null,"db.url":"jdbc:prod"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "# db\r\ndb.url=jdbc:prod\r\n! keep me\r\npool=8\r\nzone=sh-1\r\n"
	if string(got) != want {
		t.Fatalf("merged properties %q, want %q", got, want)
	}
	p, err := properties.Parse(got)
	if err != nil || p.Values["db.url"] != "jdbc:prod" || p.Values["pool"] != "8" || p.Values["zone"] != "sh-1" || len(p.Values) != 3 {
		t.Fatalf("parsed merged properties %v (%v)", p.Values, err)
	}
}

// An empty overlay leaves the file's bytes exactly as they were.
func TestEmptyPatchKeepsBytes(t *testing.T) {
	for _, patch := range []string{"", "null", "{}", " { } "} {
		for _, f := range []struct{ format, content string }{{FormatYAML, "a:   1 # x\n"}, {FormatJSON, `{"b" : 2}`}, {FormatProperties, "k =  v\n"}} {
			got, err := ApplyOverlay(f.format, []byte(f.content), json.RawMessage(patch))
			if err != nil || string(got) != f.content {
				t.Errorf("ApplyOverlayOverlay(%s, %q) = %q, %v; want the file unchanged", f.format, patch, got, err)
			}
		}
	}
}

func TestBadPatchesAreRefused(t *testing.T) {
	for _, tc := range []struct{ format, patch string }{
		{FormatYAML, `[1,2]`},
		{FormatJSON, `"x"`},
		{FormatProperties, `{"a":{"b":1}}`},
		{FormatProperties, `{"a":[1]}`},
		{FormatProperties, `{"":"x"}`},
		{"txt", `{"a":1}`},
	} {
		if err := CheckOverlay(tc.format, json.RawMessage(tc.patch)); !errors.Is(err, ErrOverlay) {
			t.Errorf("CheckOverlay(%s, %s) = %v, want ErrOverlay", tc.format, tc.patch, err)
		}
	}
	if _, err := ApplyOverlay(FormatJSON, []byte(`{not json`), json.RawMessage(`{"a":1}`)); !errors.Is(err, ErrOverlay) {
		t.Errorf("ApplyOverlay on a broken json file = %v, want ErrOverlay", err)
	}
}

// JSON keeps member order and number literals exactly.
func TestJSONKeepsOrderAndNumbers(t *testing.T) {
	got, err := ApplyOverlay(FormatJSON, []byte(`{"z":1,"big":12345678901234567890,"a":{"x":1.50}}`), json.RawMessage(`{"a":{"y":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"z\": 1,\n  \"big\": 12345678901234567890,\n  \"a\": {\n    \"x\": 1.50,\n    \"y\": true\n  }\n}\n"
	if string(got) != want {
		t.Fatalf("merged json:\n%s\nwant:\n%s", got, want)
	}
}

// A string that looks like another YAML type stays a string.
func TestYAMLStringsStayStrings(t *testing.T) {
	got, err := ApplyOverlay(FormatYAML, []byte("a: 1\n"), json.RawMessage(`{"a":"true","b":"0123","c":"null","d":5}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseConfigContent(FormatYAML, got)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != "true" || m["b"] != "0123" || m["c"] != "null" {
		t.Fatalf("merged yaml %q parses as %#v: strings changed type", got, m)
	}
}

// config.overlay is validated with the section: an unknown file, a
// wrong shape for the format, and a merged file breaking the file's
// schema are each refused with the overlay's field path.
func TestOverlayValidation(t *testing.T) {
	doc := `app: shop
version: v1
backend: {type: process, process: {command: [./shop]}}
config:
  files:
    - name: app.yaml
      content: "db: {url: jdbc:test}\n"
      schema: {type: object, properties: {db: {type: object, properties: {url: {type: string}}}}}
    - {name: pool.properties, content: "size=5\n"}
  targets: [{etcd: {key: "/config/{{.App}}/{{.File}}"}}]
  overlay:
%s
`
	for _, tc := range []struct{ overlay, field string }{
		{`    nope.yaml: {a: 1}`, "config.overlay.nope.yaml"},
		{`    pool.properties: {size: {nested: 1}}`, "config.overlay.pool.properties"},
		{`    app.yaml: {db: {url: 5}}`, "config.overlay.app.yaml"},
		{`    app.yaml: [1]`, "config.overlay.app.yaml"},
	} {
		_, err := Parse([]byte(fmt.Sprintf(doc, tc.overlay)))
		if err == nil || FieldOf(err) != tc.field {
			t.Errorf("overlay %q: err %v (field %q), want an error on %s", tc.overlay, err, FieldOf(err), tc.field)
		}
	}
	rel, err := Parse([]byte(fmt.Sprintf(doc, "    app.yaml: {db: {url: jdbc:prod}}\n    pool.properties: {size: 8}")))
	if err != nil {
		t.Fatal(err)
	}
	got, err := rel.Config.Effective("app.yaml", FormatYAML, []byte(*rel.Config.Files[0].Content))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseConfigContent(FormatYAML, got)
	if db, _ := v.(map[string]any)["db"].(map[string]any); err != nil || db["url"] != "jdbc:prod" {
		t.Fatalf("effective app.yaml = %q (%v), want db.url jdbc:prod", got, err)
	}
}
