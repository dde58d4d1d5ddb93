package process

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "demo-v1-0.log")
	if err := rotateLog(log, 10); err != nil {
		t.Fatalf("no log yet: %v", err)
	}
	write := func(s string) {
		if err := os.WriteFile(log, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	write("0123456789") // at the limit: kept
	if err := rotateLog(log, 10); err != nil || read(log) != "0123456789" {
		t.Fatalf("at the limit: %q, %v", read(log), err)
	}
	write("first run, too long")
	if err := rotateLog(log, 10); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read(log), "no such file") || read(log+".1") != "first run, too long" {
		t.Fatalf("after rotation: log %q, log.1 %q", read(log), read(log+".1"))
	}
	write("second run, too long")
	if err := rotateLog(log, 10); err != nil || read(log+".1") != "second run, too long" {
		t.Fatalf("second rotation: log.1 %q, %v", read(log+".1"), err)
	}
}
