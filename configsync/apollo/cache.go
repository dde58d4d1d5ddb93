package apollo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/graylane/graylane/spec"
)

// cacheFormat is the version of the cache file layout.
const cacheFormat = 1

// cacheFile is the last-known-good cache: the namespace's release
// documents as last received from Apollo, with the local revision they had.
// It is replaced atomically (write a temporary file, fsync, rename, fsync
// the directory), so a crash leaves either the old or the new file, never a
// truncated one (unlike agollo's own backup, which truncates then writes).
type cacheFile struct {
	Format    int          `json:"format"`
	AppID     string       `json:"appId"`
	Cluster   string       `json:"cluster"`
	Namespace string       `json:"namespace"`
	Label     string       `json:"label,omitempty"`
	SavedAt   time.Time    `json:"savedAt"`
	Revision  int64        `json:"revision"`
	Entries   []cacheEntry `json:"entries"`
}

type cacheEntry struct {
	App      string `json:"app"`
	Data     string `json:"data"`
	Revision int64  `json:"revision"`
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// cachePath is the cache file of one namespace in dir.
func cachePath(dir string, c Config) string {
	name := unsafeFileChars.ReplaceAllString(c.AppID+"+"+c.Cluster+"+"+c.Namespace, "_")
	return filepath.Join(dir, name+".json")
}

// loadCache reads and checks the cache file; (nil, nil) when there is none.
func loadCache(path string, c Config) (*cacheFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cache %s: %w", path, err)
	}
	var f cacheFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("cache %s is not valid JSON: %w", path, err)
	}
	if f.Format != cacheFormat {
		return nil, fmt.Errorf("cache %s has format %d, want %d", path, f.Format, cacheFormat)
	}
	if f.AppID != c.AppID || f.Cluster != c.Cluster || f.Namespace != c.Namespace || f.Label != c.Label {
		return nil, fmt.Errorf("cache %s is for app %s cluster %s namespace %s label %q, not app %s cluster %s namespace %s label %q",
			path, f.AppID, f.Cluster, f.Namespace, f.Label, c.AppID, c.Cluster, c.Namespace, c.Label)
	}
	for _, e := range f.Entries {
		if !spec.AppPattern.MatchString(e.App) || e.Revision < 0 || e.Revision > f.Revision {
			return nil, fmt.Errorf("cache %s has a bad entry for %q (revision %d of %d)", path, e.App, e.Revision, f.Revision)
		}
	}
	return &f, nil
}

// writeCache replaces the cache file atomically.
func writeCache(path string, f *cacheFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create cache dir %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".graylane-apollo-cache-*")
	if err != nil {
		return fmt.Errorf("write cache in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write cache %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync cache %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close cache %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace cache %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not every platform supports it
		d.Close()
	}
	return nil
}
