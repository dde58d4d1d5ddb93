package process_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/graylane/graylane/adapters/process"
	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// rewrite replaces the schema member of a state file: 0 removes it (the
// file as the release before versions wrote it).
func rewrite(t *testing.T, path string, version int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if version == 0 {
		delete(m, "schema")
	} else {
		m["schema"] = version
	}
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSchema(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m["schema"]
}

// Version step 0 → 1 of the process backend's files: instance records and
// app files of the release before versions are adopted as before and
// rewritten at version 1; a newer instance record stops the backend from
// starting (naming the file) rather than adopting or replacing its
// instance, and is left as it is.
func TestStateFilesSchemaStep0To1(t *testing.T) {
	testenv.IntegrationTest(t)
	for _, k := range []schema.Kind{process.InstanceKind(), process.AppFileKind()} {
		if err := k.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	rel := demoRelease(t, "files", "v1", freeAddr(t))
	b1 := newBackend(t, dir)
	apply(t, b1, rel, traffic.Replicas{"v1": 1})
	orig := pids(t, waitReady(t, b1, "files", traffic.Replicas{"v1": 1}))
	killAtEnd(t, orig)
	b1.Close()

	record := filepath.Join(dir, "apps", "files", "instances", "files-v1-0.json")
	app := filepath.Join(dir, "apps", "files", "app.json")
	for _, f := range []string{record, app} {
		if v := fileSchema(t, f); v != 1.0 {
			t.Fatalf("%s written at schema %v", f, v)
		}
		rewrite(t, f, 0)
	}
	b2 := newBackend(t, dir)
	if got := pids(t, waitReady(t, b2, "files", traffic.Replicas{"v1": 1})); fmt.Sprint(got) != fmt.Sprint(orig) {
		t.Fatalf("version-0 files: instances %v, want the adopted %v", got, orig)
	}
	for _, f := range []string{record, app} {
		if v := fileSchema(t, f); v != 1.0 {
			t.Fatalf("%s rewritten at schema %v", f, v)
		}
	}
	b2.Close()

	rewrite(t, record, 2)
	before, _ := os.ReadFile(record)
	_, err := wire(testConfig(t, dir))
	if !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("a newer instance record: %v", err)
	}
	if after, _ := os.ReadFile(record); string(after) != string(before) {
		t.Fatalf("newer record changed to %s", after)
	}
	if n := startsLogged(t, dir, "files", "files-v1-0"); n != 1 {
		t.Fatalf("started %d times", n)
	}
}
