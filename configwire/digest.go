package configwire

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/graylane/graylane/internal/properties"
	"github.com/graylane/graylane/spec"
)

// ShortLen is how many hex digits of a digest Short keeps (and a release
// identity carries).
const ShortLen = 8

// File is one config file of a release, with its content resolved.
type File struct {
	Name    string `json:"name"`
	Format  string `json:"format"`
	Content string `json:"content"`
	// SHA256 is the hex SHA-256 of the canonical content (FileDigest).
	SHA256 string `json:"sha256"`
}

// Short is the digest abbreviated for messages.
func Short(digest string) string {
	if len(digest) > ShortLen {
		return digest[:ShortLen]
	}
	return digest
}

// Canonical returns the bytes a file's checksum is taken over: yaml and
// json files as they are, properties files as sorted key=value lines
// (properties.Canonical), because Apollo stores a properties file as
// items and hands clients a key/value map, not the original text.
func Canonical(format string, data []byte) ([]byte, error) {
	if format != spec.FormatProperties {
		return data, nil
	}
	p, err := properties.Parse(data)
	if err != nil {
		return nil, err
	}
	return properties.Canonical(p.Values), nil
}

// FileDigest is the hex SHA-256 of a file's canonical content.
func FileDigest(format string, data []byte) (string, error) {
	c, err := Canonical(format, data)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// BundleDigest is the digest of a set of files: the hex SHA-256 of one
// line "name<TAB>format<TAB>sha256\n" per file, sorted by name. graylane
// and an instance that loaded the same files compute the same value.
func BundleDigest(files []File) string {
	fs := append([]File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	h := sha256.New()
	for _, f := range fs {
		fmt.Fprintf(h, "%s\t%s\t%s\n", f.Name, f.Format, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}
