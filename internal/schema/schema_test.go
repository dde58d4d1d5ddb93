package schema_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/graylane/graylane/internal/schema"
)

// toy is a kind with two steps: 0→1 only adds the version, 1→2 renames
// "name" to "title".
var toy = schema.Kind{
	Name: "toy", What: "toy record", Current: 2, Unversioned: 0,
	Steps: []schema.Step{
		{Change: "the schema field"},
		{
			Change: "name renamed title",
			Up: func(o schema.Object) error {
				if v, ok := o["name"]; ok {
					o["title"] = v
					delete(o, "name")
				}
				return nil
			},
			Down: func(o schema.Object) error {
				if v, ok := o["title"]; ok {
					o["name"] = v
					delete(o, "title")
				}
				return nil
			},
		},
	},
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func TestDecodeMigratesEveryOlderVersion(t *testing.T) {
	if err := toy.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		from int
	}{
		{`{"name":"a","n":1.50}`, 0},
		{`{"schema":1,"name":"a","n":1.50}`, 1},
		{`{"schema":2,"title":"a","n":1.50}`, 2},
	} {
		out, from, err := toy.Decode([]byte(tc.in))
		if err != nil || from != tc.from {
			t.Fatalf("Decode(%s) = from %d, %v", tc.in, from, err)
		}
		got := decode(t, out)
		want := map[string]any{"schema": 2.0, "title": "a", "n": 1.5}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%s) = %s, want %v", tc.in, out, want)
		}
		if from != 2 && !strings.Contains(string(out), `"n":1.50`) {
			t.Fatalf("values must be kept as written: %s", out)
		}
	}
}

func TestEncodeWritesOlderVersions(t *testing.T) {
	cur := []byte(`{"title":"a"}`)
	for at, want := range map[int]string{0: `{"name":"a"}`, 1: `{"name":"a","schema":1}`, 2: `{"schema":2,"title":"a"}`} {
		got, err := toy.Encode(cur, at)
		if err != nil || string(got) != want {
			t.Fatalf("Encode at %d = %s, %v; want %s", at, got, err, want)
		}
	}
	// a record carrying an older version number is stamped, not duplicated
	got, err := toy.Encode([]byte(`{"schema":7,"title":"a"}`), 2)
	if err != nil || string(got) != `{"schema":2,"title":"a"}` {
		t.Fatalf("Encode restamps: %s, %v", got, err)
	}
	if _, err := toy.Encode(cur, 3); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("Encode at a version this graylane does not know: %v", err)
	}
}

func TestNewerRecordsAreRefusedWithAClearMessage(t *testing.T) {
	_, from, err := toy.Decode([]byte(`{"schema":3,"title":"a"}`))
	if !errors.Is(err, schema.ErrNewer) || from != 3 {
		t.Fatalf("Decode of a newer record: from %d, %v", from, err)
	}
	var ne *schema.NewerError
	if !errors.As(err, &ne) || ne.Version != 3 || ne.Reads != 2 {
		t.Fatalf("error %#v", err)
	}
	for _, s := range []string{"toy record has schema version 3", "reads up to 2", "newer graylane", "docs/upgrades.md"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("message %q lacks %q", err, s)
		}
	}
	if _, _, err := toy.Convert([]byte(`{"schema":3}`), 2); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("Convert of a newer record: %v", err)
	}
}

func TestConvertBothWays(t *testing.T) {
	out, from, err := toy.Convert([]byte(`{"schema":2,"title":"x"}`), 0)
	if err != nil || from != 2 || string(out) != `{"name":"x"}` {
		t.Fatalf("down: %s from %d, %v", out, from, err)
	}
	in := []byte(`{"name":"x"}`)
	out, from, err = toy.Convert(in, 0)
	if err != nil || from != 0 || &out[0] != &in[0] {
		t.Fatalf("a record already at the version is returned as is: %s, %v", out, err)
	}
}

func TestMalformedRecords(t *testing.T) {
	for _, in := range []string{`[1]`, `{"schema":"2"}`, `{"schema":-1}`, `{"schema":1.5}`, `not json`} {
		if _, _, err := toy.Decode([]byte(in)); !errors.Is(err, schema.ErrInvalid) {
			t.Errorf("Decode(%s) = %v, want ErrInvalid", in, err)
		}
	}
	tooOld := schema.Kind{Name: "t", What: "t", Current: 3, Unversioned: 2, Steps: []schema.Step{{}}}
	if _, _, err := tooOld.Decode([]byte(`{"schema":1}`)); !errors.Is(err, schema.ErrTooOld) {
		t.Fatalf("a version before the oldest step: %v", err)
	}
	strict := schema.Kind{Name: "s", What: "s", Current: 1, Unversioned: schema.Missing}
	if _, _, err := strict.Decode([]byte(`{}`)); !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("a kind refusing unversioned records: %v", err)
	}
}

func TestTaggedVersions(t *testing.T) {
	k := schema.Kind{Name: "routes", What: "routes file", Current: 2, Unversioned: schema.Missing, Tag: "graylane.routes",
		Steps: []schema.Step{{Change: "nothing"}}}
	out, from, err := k.Decode([]byte(`{"schema":"graylane.routes/v1","apps":{}}`))
	if err != nil || from != 1 || decode(t, out)["schema"] != "graylane.routes/v2" {
		t.Fatalf("Decode = %s from %d, %v", out, from, err)
	}
	for _, bad := range []string{`{"schema":"other/v1"}`, `{"schema":1}`, `{"schema":"graylane.routes/vx"}`} {
		if _, _, err := k.Decode([]byte(bad)); !errors.Is(err, schema.ErrInvalid) {
			t.Errorf("Decode(%s) = %v", bad, err)
		}
	}
	if _, _, err := k.Decode([]byte(`{"schema":"graylane.routes/v3"}`)); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("newer tagged: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, k := range []schema.Kind{
		{Name: "a", Current: 1},
		{Name: "a", What: "a", Current: 1, Steps: []schema.Step{{}, {}}},
		{Name: "a", What: "a", Current: 1, Unversioned: 2},
	} {
		if k.Validate() == nil {
			t.Errorf("%+v validated", k)
		}
	}
}
