package configrelease

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/spec"
)

// The effective bundle carries the overlay; its BaseDigest is the
// bundle's own files, equal to ResolveBase's digest, so two environments
// with different overlays share the base digest and differ in Digest.
func TestResolveLaysTheOverlay(t *testing.T) {
	content := "greeting: hello\ndb: {url: jdbc:test}\n"
	cfg := &spec.Config{
		Files:   []spec.ConfigFile{{Name: "app.yaml", Content: &content}},
		Targets: []spec.ConfigTarget{{Etcd: &spec.EtcdConfigTarget{Key: "/config/{{.App}}/{{.File}}"}}},
	}
	ctx := context.Background()
	base, err := ResolveBase(ctx, "shop", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Resolve(ctx, "shop", cfg, nil)
	if err != nil || plain.Digest != base.Digest || plain.BaseDigest != "" {
		t.Fatalf("without an overlay Resolve = %+v, %v; want the base bundle %s", plain, err, base.Digest)
	}
	cfg.Overlay = map[string]json.RawMessage{"app.yaml": json.RawMessage(`{"db":{"url":"jdbc:prod"}}`)}
	eff, err := Resolve(ctx, "shop", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if eff.Digest == base.Digest || eff.BaseDigest != base.Digest || eff.Base() != base.Digest {
		t.Fatalf("with an overlay: digest %s base %s; want a new digest over base %s", eff.Digest, eff.BaseDigest, base.Digest)
	}
	v, err := spec.ParseConfigContent(spec.FormatYAML, []byte(eff.Files[0].Content))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["greeting"] != "hello" || m["db"].(map[string]any)["url"] != "jdbc:prod" {
		t.Fatalf("effective file %q", eff.Files[0].Content)
	}
	sum, _ := configwire.FileDigest("yaml", []byte(eff.Files[0].Content))
	if eff.Files[0].SHA256 != sum || eff.Digest != configwire.BundleDigest(eff.Files) {
		t.Fatal("the effective bundle's digests are not those of its files (what instances report)")
	}
}
