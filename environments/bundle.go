package environments

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/graylane/graylane/configwire"
)

// SchemaVersion is the version of every record this package's stores
// write (bundles, environment states, requests, freezes, plans). A reader
// refuses a newer one instead of misreading it.
const SchemaVersion = 1

// CheckSchema returns an error when v is newer than SchemaVersion.
func CheckSchema(what string, v int) error {
	if v > SchemaVersion {
		return fmt.Errorf("%s has schema version %d but this graylane reads up to %d: upgrade graylane", what, v, SchemaVersion)
	}
	return nil
}

// Bundle is what a promotion moves from one environment to the next: a
// code version and the config files bound to it, by content, exactly as
// they ran in the source environment (before that environment's
// overlay). It is immutable and named by its digest.
type Bundle struct {
	Schema  int    `json:"schema"`
	App     string `json:"app"`
	Version string `json:"version"`
	// Files are the bound config files with their content (none for an
	// app without a config section).
	Files []configwire.File `json:"files,omitempty"`
	// ConfigDigest is configwire.BundleDigest of Files ("" without files).
	ConfigDigest string `json:"configDigest,omitempty"`
	// Digest names the bundle (BundleDigest).
	Digest string `json:"digest"`
	// Env is the environment it was first seen in, at FirstSeen.
	Env       string    `json:"env,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
}

// NewBundle builds a bundle (files need SHA256 set).
func NewBundle(app, version string, files []configwire.File) Bundle {
	fs := append([]configwire.File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	b := Bundle{Schema: SchemaVersion, App: app, Version: version, Files: fs}
	if len(fs) > 0 {
		b.ConfigDigest = configwire.BundleDigest(fs)
	}
	b.Digest = BundleDigest(version, b.ConfigDigest)
	return b
}

// BundleDigest is the digest of a bundle: hex SHA-256 of
// "graylane bundle v1\n<version>\n<config digest>\n". Two environments
// running the same code with the same files (before their overlays) run
// the same bundle.
func BundleDigest(version, configDigest string) string {
	sum := sha256.Sum256([]byte("graylane bundle v1\n" + version + "\n" + configDigest + "\n"))
	return hex.EncodeToString(sum[:])
}

// ShortLen is how many hex digits Short keeps.
const ShortLen = 12

// Short abbreviates a digest for messages.
func Short(d string) string {
	if len(d) > ShortLen {
		return d[:ShortLen]
	}
	return d
}

// Label names a bundle for people: "v2 (bundle 3f2a9c01b4de)".
func (b *Bundle) Label() string { return b.Version + " (bundle " + Short(b.Digest) + ")" }
