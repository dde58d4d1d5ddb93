package proxy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/internal/schema"
)

// The routes file is at version 1 ("graylane.proxy-routes/v1"); a file of
// a newer graylane stops NewLocal with a message naming the file and the
// version instead of being served wrongly, and is left as it is; a file
// without the member is not a routes file.
func TestRoutesFileVersions(t *testing.T) {
	if err := proxy.RoutesKind().Validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"v1.json":      `{"schema":"graylane.proxy-routes/v1","apps":{}}`,
		"newer.json":   `{"schema":"graylane.proxy-routes/v2","apps":{}}`,
		"missing.json": `{"apps":{}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := proxy.NewLocal(proxy.LocalConfig{StateFile: filepath.Join(dir, "v1.json")})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	newer := filepath.Join(dir, "newer.json")
	_, err = proxy.NewLocal(proxy.LocalConfig{StateFile: newer})
	if !errors.Is(err, schema.ErrNewer) || !strings.Contains(err.Error(), newer) || !strings.Contains(err.Error(), "schema version 2") {
		t.Fatalf("newer routes file: %v", err)
	}
	if b, _ := os.ReadFile(newer); !strings.Contains(string(b), "/v2") {
		t.Fatalf("newer file changed: %s", b)
	}
	if _, err := proxy.NewLocal(proxy.LocalConfig{StateFile: filepath.Join(dir, "missing.json")}); !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("file without a schema: %v", err)
	}
}
