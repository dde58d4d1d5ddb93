package udiff

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnified(t *testing.T) {
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"one line changed", "app: demo\nversion: v1\nreplicas: 4\n", "app: demo\nversion: v2\nreplicas: 4\n",
			"--- a\n+++ b\n@@ -1,3 +1,3 @@\n app: demo\n-version: v1\n+version: v2\n replicas: 4\n"},
		{"added at end", "a\n", "a\nb\n", "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n"},
		{"from empty", "", "x\n", "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n"},
		{"to empty", "x\ny\n", "", "--- a\n+++ b\n@@ -1,2 +0,0 @@\n-x\n-y\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unified("a", "b", tc.a, tc.b, 0); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestTwoHunksFarApart(t *testing.T) {
	var a, b []string
	for i := 1; i <= 20; i++ {
		a = append(a, fmt.Sprint(i))
		b = append(b, fmt.Sprint(i))
	}
	b[1], b[17] = "two", "eighteen"
	got := Unified("a", "b", strings.Join(a, "\n"), strings.Join(b, "\n"), 0)
	want := "--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if add, rem := Stat(strings.Join(a, "\n"), strings.Join(b, "\n")); add != 2 || rem != 2 {
		t.Errorf("stat = +%d -%d, want +2 -2", add, rem)
	}
}

func TestBounded(t *testing.T) {
	a := strings.Repeat("x\n", 100)
	b := strings.Repeat("y\n", 100)
	got := Unified("a", "b", a, b, 10)
	if !strings.Contains(got, "... (191 more lines)") || strings.Count(got, "\n") != 13 {
		t.Errorf("not bounded:\n%s", got)
	}
}
