package redact

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name, format, in string
		hidden, kept     []string
	}{
		{"yaml", "yaml", "db:\n  user: shop\n  password: hunter2\napiKey: abc123\ngreeting: hi\n",
			[]string{"hunter2", "abc123"}, []string{"user: shop", "greeting: hi", "password: " + Mask}},
		{"json", "json", `{"db": {"password": "hunter2", "host": "x"}, "tokens": ["a"], "name": "n"}`,
			[]string{"hunter2"}, []string{`"host": "x"`, `"name": "n"`}},
		{"properties", "properties", "db.url=jdbc:x\ndb.password=hunter2\n# secret: keep comments\nclient.secret: s3\n",
			[]string{"hunter2", "s3"}, []string{"db.url=jdbc:x", "# secret: keep comments"}},
		{"unparseable yaml falls back to lines", "yaml", "a: [\npassword: hunter2\n",
			[]string{"hunter2"}, []string{"a: ["}},
		{"explicit key", "yaml", "greeting: hi\nbanner: secret-ish\n", []string{"secret-ish"}, []string{"greeting: hi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.name == "explicit key" {
				extra = []string{"banner"}
			}
			got := Text(tc.format, tc.in, extra...)
			for _, h := range tc.hidden {
				if strings.Contains(got, h) {
					t.Errorf("%q still in\n%s", h, got)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(got, k) {
					t.Errorf("%q missing from\n%s", k, got)
				}
			}
		})
	}
}

func TestValueAndDiff(t *testing.T) {
	v := Value(map[string]any{"headers": map[string]any{"Authorization": "Bearer x", "X-Team": "pay"}, "n": 1.0}).(map[string]any)
	h := v["headers"].(map[string]any)
	if h["Authorization"] != Mask || h["X-Team"] != "pay" || v["n"] != 1.0 {
		t.Errorf("Value = %v", v)
	}
	d := Diff("--- a\n+++ b\n@@ -1 +1 @@\n-token: old\n+token: new\n greeting: hi")
	if strings.Contains(d, "old") || strings.Contains(d, "new") || !strings.Contains(d, "-token: "+Mask) || !strings.Contains(d, " greeting: hi") {
		t.Errorf("Diff = %s", d)
	}
}
