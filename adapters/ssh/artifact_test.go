package ssh

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type tarEntry struct {
	name, body, link string
	typ              byte
}

func writeTgz(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == tar.TypeDir {
			h.Mode, h.Size = 0o755, 0
		}
		if e.typ == tar.TypeSymlink {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTarballArtifact(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "v1.tgz")
	writeTgz(t, good, []tarEntry{
		{name: "./bin/", typ: tar.TypeDir},
		{name: "./bin/app", body: "#!/bin/sh\n", typ: tar.TypeReg},
		{name: "VERSION", body: "v1\n", typ: tar.TypeReg},
		{name: "current-bin", link: "bin/app", typ: tar.TypeSymlink},
	})
	a := &artifacts{workDir: t.TempDir()}
	entries, err := a.entries(good)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Path] = e.Type + e.Target
	}
	want := map[string]string{"bin": "d", "bin/app": "f", "VERSION": "f", "current-bin": "lbin/app"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("entry %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	m := buildManifest("v1", entries, nil)
	m2 := buildManifest("v1", entries, nil)
	if m.Digest != m2.Digest || len(m.Digest) != 64 {
		t.Fatalf("manifest digest unstable: %s %s", m.Digest, m2.Digest)
	}

	for name, bad := range map[string][]tarEntry{
		"dotdot":         {{name: "../evil", body: "x", typ: tar.TypeReg}},
		"symlink escape": {{name: "link", link: "/", typ: tar.TypeSymlink}, {name: "link/tmp/evil", body: "x", typ: tar.TypeReg}},
		"reserved":       {{name: ManifestName, body: "{}", typ: tar.TypeReg}},
		"device":         {{name: "dev", typ: tar.TypeChar}},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".tgz")
		writeTgz(t, p, bad)
		if _, err := a.entries(p); err == nil {
			t.Errorf("%s: artifact accepted", name)
		}
	}
	if _, err := os.Stat("/tmp/evil"); err == nil {
		t.Fatal("an artifact wrote outside its directory")
	}
}
