package ssh

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// ManifestName is the file, inside every release directory graylane
// creates, that lists the release's files with their checksums. It is
// written last, in the same upload, so a release without it is incomplete.
const ManifestName = ".graylane-manifest.json"

// Entry is one file, directory or symlink of a release.
type Entry struct {
	Path   string      `json:"path"`
	Type   string      `json:"type"` // "f", "d" or "l"
	Mode   fs.FileMode `json:"mode"` // permission bits
	Size   int64       `json:"size,omitempty"`
	SHA256 string      `json:"sha256,omitempty"`
	Target string      `json:"target,omitempty"` // symlink target

	src string // local file the content comes from
}

// Manifest lists a release's content. Digest covers Version and Entries.
type Manifest struct {
	Version string  `json:"version"`
	Digest  string  `json:"digest"`
	Entries []Entry `json:"entries"`
}

func (m *Manifest) seal() {
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", m.Version)
	for _, e := range m.Entries {
		fmt.Fprintf(h, "%s\x00%s\x00%o\x00%d\x00%s\x00%s\n", e.Path, e.Type, e.Mode, e.Size, e.SHA256, e.Target)
	}
	m.Digest = hex.EncodeToString(h.Sum(nil))
}

// checkRelPath accepts a clean relative path inside a release.
func checkRelPath(p string) error {
	if p == "" || p == "." || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") || strings.ContainsAny(p, "\x00\n") {
		return fmt.Errorf("path %q is not a clean relative path", p)
	}
	if p == ManifestName {
		return fmt.Errorf("path %q is reserved for graylane", p)
	}
	return nil
}

// scanDir lists a local directory as manifest entries (symlinks are kept as
// links, never followed).
func scanDir(dir string) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := checkRelPath(rel); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: rel, Mode: info.Mode().Perm(), src: p}
		switch {
		case info.Mode().IsDir():
			e.Type = "d"
		case info.Mode()&fs.ModeSymlink != 0:
			e.Type = "l"
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
			e.Mode = 0o777
		case info.Mode().IsRegular():
			e.Type = "f"
			e.Size = info.Size()
			if e.SHA256, err = fileSHA256(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: only files, directories and symlinks can be deployed", p)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildManifest merges the artifact's entries with a host's config overlay
// (overlay wins on equal paths).
func buildManifest(version string, artifact, overlay []Entry) *Manifest {
	byPath := map[string]Entry{}
	for _, e := range artifact {
		byPath[e.Path] = e
	}
	for _, e := range overlay {
		byPath[e.Path] = e
	}
	m := &Manifest{Version: version}
	for _, e := range byPath {
		m.Entries = append(m.Entries, e)
	}
	m.seal()
	return m
}

// artifacts turns artifact paths into scanned directories, unpacking
// tarballs once into a cache directory.
type artifacts struct {
	workDir string
	mu      sync.Mutex
	scanned map[string][]Entry // key: path|size|mtime
}

func (a *artifacts) entries(p string) ([]Entry, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	key := fmt.Sprintf("%s|%d|%d", p, st.Size(), st.ModTime().UnixNano())
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.scanned[key]; ok && !st.IsDir() {
		return e, nil
	}
	dir := p
	if !st.IsDir() {
		sum := sha256.Sum256([]byte(key))
		dir = filepath.Join(a.workDir, "artifacts", hex.EncodeToString(sum[:12]))
		if _, err := os.Stat(dir); err != nil {
			if err := unpack(p, dir); err != nil {
				return nil, fmt.Errorf("artifact %s: %w", p, err)
			}
		}
	}
	e, err := scanDir(dir)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", p, err)
	}
	if a.scanned == nil {
		a.scanned = map[string][]Entry{}
	}
	a.scanned[key] = e
	return e, nil
}

// unpack extracts a .tar, .tar.gz or .tgz into dir through an os.Root, so
// no entry (nor a symlink planted by an earlier one) can write outside it.
func unpack(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(archive, ".gz") || strings.HasSuffix(archive, ".tgz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	} else if !strings.HasSuffix(archive, ".tar") {
		return errors.New("an artifact file must end in .tar, .tar.gz or .tgz")
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/")
		if name == "." || name == "" {
			continue
		}
		if err := checkRelPath(name); err != nil {
			return err
		}
		mode := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
			if err := root.Chmod(name, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if d := path.Dir(name); d != "." {
				if err := root.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			out, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if d := path.Dir(name); d != "." {
				if err := root.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			if err := root.Symlink(h.Linkname, name); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", h.Name, h.Typeflag)
		}
	}
	return os.Rename(tmp, dir)
}

// writeTar streams the entries (directories, symlinks and the files in
// upload) and finally the manifest as a tar archive.
func writeTar(w io.Writer, m *Manifest, upload map[string]bool) error {
	tw := tar.NewWriter(w)
	for _, e := range m.Entries {
		h := &tar.Header{Name: e.Path, Mode: int64(e.Mode)}
		switch e.Type {
		case "d":
			h.Typeflag, h.Name = tar.TypeDir, e.Path+"/"
		case "l":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
		case "f":
			if !upload[e.Path] {
				continue
			}
			h.Typeflag, h.Size = tar.TypeReg, e.Size
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.Type == "f" {
			f, err := os.Open(e.src)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
			if n != e.Size {
				return fmt.Errorf("%s changed while uploading", e.src)
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
		return err
	}
	if _, err := tw.Write(b); err != nil {
		return err
	}
	return tw.Close()
}
