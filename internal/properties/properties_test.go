package properties_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/graylane/graylane/internal/properties"
)

func TestParse(t *testing.T) {
	in := "# comment\n! other\n  a = 1\nb:2\nc 3\nlong = one \\\n    two\nesc\\ key = tab\\there\\u00e9\nempty\na=again\nsmile=\\ud83d\\ude00\n"
	p, err := properties.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "again", "b": "2", "c": "3", "long": "one two", "esc key": "tab\there\u00e9", "empty": "", "smile": "😀"}
	for k, v := range want {
		if p.Values[k] != v {
			t.Errorf("%q = %q, want %q", k, p.Values[k], v)
		}
	}
	if len(p.Values) != len(want) || strings.Join(p.Keys, ",") != "a,b,c,long,esc key,empty,smile" {
		t.Errorf("keys %v values %v", p.Keys, p.Values)
	}
}

// Java's rules at the edges, one case each.
func TestParseEdges(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     map[string]string
	}{
		{"CRLF and CR line ends", "a=1\r\nb=2\rc=3", map[string]string{"a": "1", "b": "2", "c": "3"}},
		{"separator with spaces around", "k  :  v", map[string]string{"k": "v"}},
		{"second separator is part of the value", "k = = v", map[string]string{"k": "= v"}},
		{"escaped separators in the key", `a\=b\:c = d`, map[string]string{"a=b:c": "d"}},
		{"even trailing backslashes do not continue", "a=x\\\\\nb=y", map[string]string{"a": `x\`, "b": "y"}},
		{"continuation at the end of the file", "a=x\\", map[string]string{"a": "x"}},
		{"unknown escape drops the backslash", `a=\q`, map[string]string{"a": "q"}},
		{"comment markers inside a value", "a=#!x", map[string]string{"a": "#!x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := properties.Parse([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Values) != len(c.want) {
				t.Fatalf("values %q, want %q", p.Values, c.want)
			}
			for k, v := range c.want {
				if got, ok := p.Values[k]; !ok || got != v {
					t.Errorf("%q = %q (present %v), want %q", k, got, ok, v)
				}
			}
		})
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for in, want := range map[string]string{
		"a=1\nb=\\u12":     "line 2: value of \"b\": malformed \\uxxxx escape",
		"a=1\n\n\\uzzzz=2": "line 3: key",
	} {
		if _, err := properties.Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

// Canonical output is sorted, escaped, and reads back to the same values,
// whatever the input looked like.
func TestCanonicalRoundTrips(t *testing.T) {
	values := map[string]string{
		"b": "2", "a": "1", " lead": " value with a leading space", "k=e:y": "#not a comment",
		"tab\tkey": "line\nbreak\r\f", "ctl": "\x01\x7f", "uni": "é😀", "empty": "",
	}
	canon := properties.Canonical(values)
	if n := strings.Count(string(canon), "\n"); n != len(values) {
		t.Fatalf("%d lines for %d values:\n%s", n, len(values), canon)
	}
	back, err := properties.Parse(canon)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(back.Keys) || len(back.Keys) != len(values) {
		t.Errorf("keys in the canonical form: %q, want all of them sorted", back.Keys)
	}
	for k, v := range values {
		if back.Values[k] != v {
			t.Errorf("round trip of %q: %q, want %q", k, back.Values[k], v)
		}
	}
	if again := properties.Canonical(back.Values); string(again) != string(canon) {
		t.Fatalf("canonical form is not stable:\n%s\n%s", canon, again)
	}
}
