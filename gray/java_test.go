package gray

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graylane/graylane/testsupport/testenv"
)

// TestJavaSnippetMatchesVectors compiles the Java class of docs/gray.md
// and runs it against every bucket and split vector, so the snippet a
// gateway copies stays bit for bit equal to the Go implementation.
func TestJavaSnippetMatchesVectors(t *testing.T) {
	testenv.IntegrationTest(t) // compiles and runs Java
	javac, java := testenv.LookPath(t, "javac"), testenv.LookPath(t, "java")
	md, err := os.ReadFile(filepath.Join("..", "docs", "gray.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(md), "```java\n")
	src, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(src, "class GrayBucket") {
		t.Fatal("docs/gray.md has no ```java block with class GrayBucket")
	}
	v := loadVectors(t)
	var b strings.Builder
	b.WriteString("public class Check { static int n = 0, bad = 0;\n" +
		"static void check(int got, int want, String what) { n++; if (got != want) { bad++; System.out.println(\"MISMATCH \" + what + \": \" + got + \" != \" + want); } }\n" +
		"static void checkS(String got, String want, String what) { n++; if (!got.equals(want)) { bad++; System.out.println(\"MISMATCH \" + what + \": \" + got + \" != \" + want); } }\n" +
		"public static void main(String[] a) {\n")
	for i, vec := range v.BucketVectors {
		want := -1
		if vec.Bucket != nil {
			want = *vec.Bucket
		}
		fmt.Fprintf(&b, "check(GrayBucket.bucket(%s, %s), %d, \"bucket vector %d\");\n", javaString(vec.Salt), javaString(vec.Key), want, i)
	}
	for i, vec := range v.SplitVectors {
		var vs, ws []string
		for _, w := range vec.Split {
			vs = append(vs, javaString(w.Version))
			ws = append(ws, fmt.Sprint(w.Weight))
		}
		fmt.Fprintf(&b, "checkS(GrayBucket.pick(new String[]{%s}, new int[]{%s}, %d), %s, \"split vector %d\");\n",
			strings.Join(vs, ", "), strings.Join(ws, ", "), vec.Bucket, javaString(vec.Version), i)
	}
	b.WriteString("System.out.println(n + \" vectors, \" + bad + \" mismatches\"); if (bad > 0) System.exit(1); } }\n")
	dir := t.TempDir()
	for name, content := range map[string]string{"GrayBucket.java": src, "Check.java": b.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(javac, "-d", dir, filepath.Join(dir, "GrayBucket.java"), filepath.Join(dir, "Check.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	out, err := exec.Command(java, "-cp", dir, "Check").CombinedOutput()
	if err != nil {
		t.Fatalf("the Java snippet disagrees with the vectors: %v\n%s", err, out)
	}
	want := fmt.Sprintf("%d vectors, 0 mismatches", len(v.BucketVectors)+len(v.SplitVectors))
	if !strings.Contains(string(out), want) {
		t.Fatalf("java printed %q, want %q", out, want)
	}
	t.Logf("java: %s", strings.TrimSpace(string(out)))
}

// javaString renders s as a Java string literal (no \u escapes for line
// breaks: Java translates those before lexing).
func javaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16(r) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func utf16(r rune) []uint16 {
	if r < 0x10000 {
		return []uint16{uint16(r)}
	}
	r -= 0x10000
	return []uint16{uint16(0xd800 + (r >> 10)), uint16(0xdc00 + (r & 0x3ff))}
}
