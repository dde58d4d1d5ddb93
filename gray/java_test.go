package gray

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graylane/graylane/testsupport/grayvectors"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// TestJavaSnippetMatchesVectors compiles the Java class of docs/gray.md
// and runs it against every bucket, split, route, raw-key and percent
// vector, so the class a gateway copies stays bit for bit equal to the Go
// implementation (and so to graylane's proxy and nginx Lua, which check
// the same vectors).
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
	v := grayvectors.Load(t)
	var b strings.Builder
	b.WriteString("public class Check { static int n = 0, bad = 0;\n" +
		"static void check(int got, int want, String what) { n++; if (got != want) { bad++; System.out.println(\"MISMATCH \" + what + \": \" + got + \" != \" + want); } }\n" +
		"static void checkS(String got, String want, String what) { n++; if (!got.equals(want)) { bad++; System.out.println(\"MISMATCH \" + what + \": \" + got + \" != \" + want); } }\n" +
		"public static void main(String[] a) {\n")
	n := 0
	for i, vec := range v.BucketVectors {
		want := -1
		if vec.Bucket != nil {
			want = *vec.Bucket
		}
		fmt.Fprintf(&b, "check(GrayBucket.bucket(%s, %s), %d, \"bucket vector %d\");\n", javaString(vec.Salt), javaString(vec.Key), want, i)
		n++
	}
	pick := func(split []traffic.VersionWeight, bucket string) string {
		var vs, ws []string
		for _, w := range split {
			vs = append(vs, javaString(w.Version))
			ws = append(ws, fmt.Sprint(w.Weight))
		}
		return fmt.Sprintf("GrayBucket.pick(new String[]{%s}, new int[]{%s}, %s)", strings.Join(vs, ", "), strings.Join(ws, ", "), bucket)
	}
	for i, vec := range v.SplitVectors {
		fmt.Fprintf(&b, "checkS(%s, %s, \"split vector %d\");\n", pick(vec.Split, fmt.Sprint(vec.Bucket)), javaString(vec.Version), i)
		n++
	}
	for i, vec := range v.RouteVectors {
		fmt.Fprintf(&b, "check(GrayBucket.bucket(%s, %s), %d, \"route vector %d bucket\");\n", javaString(vec.Salt), javaString(vec.Key), vec.Bucket, i)
		fmt.Fprintf(&b, "checkS(%s, %s, \"route vector %d\");\n", pick(vec.Split, fmt.Sprintf("GrayBucket.bucket(%s, %s)", javaString(vec.Salt), javaString(vec.Key))), javaString(vec.Version), i)
		n += 2
	}
	for i, vec := range v.RawKeyVectors {
		fmt.Fprintf(&b, "check(GrayBucket.bucketOfHeader(%s, %s), %d, \"raw key vector %d\");\n", javaString(vec.Salt), javaString(vec.Latin1), vec.Bucket, i)
		fmt.Fprintf(&b, "check(GrayBucket.bucket(%s, %s), %d, \"raw key vector %d as UTF-8\");\n", javaString(vec.Salt), javaString(vec.Latin1), vec.Wrong, i)
		n += 2
	}
	for i, vec := range v.PercentVectors {
		fmt.Fprintf(&b, "check(GrayBucket.percentThreshold(%v), %d, \"percent vector %d\");\n", vec.Percent, vec.Threshold, i)
		n++
	}
	b.WriteString("System.out.println(n + \" vectors, \" + bad + \" mismatches\"); if (bad > 0) System.exit(1); } }\n")
	dir := t.TempDir()
	for name, content := range map[string]string{"GrayBucket.java": src, "Check.java": b.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(javac, "-encoding", "UTF-8", "-d", dir, filepath.Join(dir, "GrayBucket.java"), filepath.Join(dir, "Check.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	out, err := exec.Command(java, "-cp", dir, "Check").CombinedOutput()
	if err != nil {
		t.Fatalf("the Java snippet disagrees with the vectors: %v\n%s", err, out)
	}
	want := fmt.Sprintf("%d vectors, 0 mismatches", n)
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
