package spec

import (
	"os"
	"strings"
	"testing"
)

// Every release example in the README and docs parses: the documentation
// cannot drift from the spec.
func TestDocumentedExamplesParse(t *testing.T) {
	for _, file := range []string{"../README.md", "../docs/backends.md", "../docs/gray.md", "../docs/kubernetes.md", "../docs/config.md"} {
		data, err := os.ReadFile(file)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(data), "```yaml\n")
		n := 0
		for i, b := range blocks[1:] {
			doc, _, _ := strings.Cut(b, "```")
			if !strings.Contains(doc, "\napp: ") && !strings.HasPrefix(doc, "app: ") {
				continue // a fragment or a graylane config, not a release
			}
			n++
			if _, err := Parse([]byte(doc)); err != nil {
				t.Errorf("%s: yaml block %d does not parse: %v\n%s", file, i+1, err, doc)
			}
		}
		t.Logf("%s: %d release examples", file, n)
	}
}
