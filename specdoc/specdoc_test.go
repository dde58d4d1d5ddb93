package specdoc

import (
	"strings"
	"testing"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/spec"
)

const prodDoc = `# prod's own release document
app: shop
version: v1   # set by promotions
replicas: 6
backend: {type: process, process: {command: [./shop]}}
config:
  files:
    - name: app.yaml
      content: "greeting: old\n"
      schema: {type: object, required: [greeting]}
    - name: gone.properties
      contentRef: /graylane/config-src/shop/gone
  targets: [{apollo: {appId: shop, namespace: "{{.File}}"}}]
  overlay:
    app.yaml: {db: {url: jdbc:prod}}
`

// A promotion's bundle replaces the version and the files' contents;
// prod's replicas, targets, overlay, the file's schema and the comments
// stay prod's.
func TestSetBundleKeepsTheEnvironmentsOwnFields(t *testing.T) {
	files := []configwire.File{{Name: "app.yaml", Format: "yaml", Content: "greeting: hello\ndb: {url: jdbc:test}\n"}, {Name: "new.json", Format: "json", Content: `{"a":1}`}}
	out, err := SetBundle([]byte(prodDoc), "v2", files)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := spec.Parse(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rel.Version != "v2" || rel.ReplicaCount() != 6 || len(rel.Config.Files) != 2 || *rel.Config.Files[0].Content != files[0].Content ||
		rel.Config.Files[0].Schema == nil || rel.Config.Files[1].Name != "new.json" || rel.Config.Targets[0].Apollo == nil || len(rel.Config.Overlay) != 1 {
		t.Fatalf("promoted document:\n%s", out)
	}
	for _, keep := range []string{"# prod's own release document", "# set by promotions"} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("comment %q lost:\n%s", keep, out)
		}
	}
	if strings.Contains(string(out), "gone.properties") {
		t.Errorf("a file the bundle does not have is still listed:\n%s", out)
	}
}

func TestSetBundleJSONAndRefusals(t *testing.T) {
	out, err := SetBundle([]byte(`{"app":"shop","version":"v1","replicas":2,"backend":{"type":"registry"}}`), "v9", nil)
	if err != nil || !strings.Contains(string(out), `"version": "v9"`) || !strings.Contains(string(out), `"replicas": 2`) {
		t.Fatalf("%s %v", out, err)
	}
	if _, err := SetBundle([]byte("app: shop\nversion: v1\n"), "v2", []configwire.File{{Name: "a.yaml"}}); err == nil || !strings.Contains(err.Error(), "no config section") {
		t.Fatalf("bundle with files into a document without config: %v", err)
	}
	if _, err := SetBundle([]byte(prodDoc), "v2", nil); err == nil || !strings.Contains(err.Error(), "no config files") {
		t.Fatalf("bundle without files into a document with config: %v", err)
	}
	v, err := SetVersion([]byte("app: a # c\nversion: v1 # keep\n"), "v2")
	if err != nil || string(v) != "app: a # c\nversion: v2 # keep\n" {
		t.Fatalf("SetVersion = %q %v", v, err)
	}
}
