package configrelease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/spec"
)

// IdentitySeparator joins a code version and a config digest in a release
// identity: "v1_cfg0a1b2c3d" is code v1 with a config other than the one
// v1 was first released with. It is valid in a version, a Nacos dataId,
// an Apollo label and a Kubernetes label value.
const IdentitySeparator = "_cfg"

// identityDigestLen is how many hex digits of the digest an identity
// carries.
const identityDigestLen = 8

// File is one config file of a release, with its content resolved.
type File struct {
	Name    string `json:"name"`
	Format  string `json:"format"`
	Content string `json:"content"`
	// SHA256 is the hex SHA-256 of the canonical content (FileDigest).
	SHA256 string `json:"sha256"`
}

// Bundle is the set of config files bound to one release identity.
type Bundle struct {
	// Files, sorted by name.
	Files []File `json:"files"`
	// Digest identifies the set (BundleDigest): what instances report.
	Digest string `json:"digest"`
}

// File returns the named file, or nil.
func (b *Bundle) File(name string) *File {
	if b == nil {
		return nil
	}
	for i := range b.Files {
		if b.Files[i].Name == name {
			return &b.Files[i]
		}
	}
	return nil
}

// Short is the digest abbreviated for messages.
func Short(digest string) string {
	if len(digest) > identityDigestLen {
		return digest[:identityDigestLen]
	}
	return digest
}

// Canonical returns the bytes a file's checksum is taken over: yaml and
// json files as they are, properties files as sorted key=value lines
// (spec.CanonicalProperties), because Apollo stores a properties file as
// items and hands clients a key/value map, not the original text.
func Canonical(format string, data []byte) ([]byte, error) {
	if format != spec.FormatProperties {
		return data, nil
	}
	p, err := spec.ParseProperties(data)
	if err != nil {
		return nil, err
	}
	return spec.CanonicalProperties(p.Values), nil
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
// line "name<TAB>format<TAB>sha256\n" per file, sorted by name. An
// instance that loaded the files computes the same value (sdk/config).
func BundleDigest(files []File) string {
	fs := append([]File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	h := sha256.New()
	for _, f := range fs {
		fmt.Fprintf(h, "%s\t%s\t%s\n", f.Name, f.Format, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewBundle builds a bundle from files whose SHA256 is set.
func NewBundle(files []File) Bundle {
	fs := append([]File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return Bundle{Files: fs, Digest: BundleDigest(fs)}
}

// Identity is the release identity of code version with config digest,
// given the digest version was bound to (the config it was first released
// with, "" if none yet): the version itself when the digests agree or
// nothing is bound, else "<version>_cfg<8 hex>".
func Identity(version, digest, bound string) string {
	if bound == "" || bound == digest {
		return version
	}
	return version + IdentitySeparator + digest[:identityDigestLen]
}

// CodeVersion returns the code version of a release identity.
func CodeVersion(identity string) string { return spec.CodeVersion(identity) }

// ContentReader reads the content of files given by contentRef (keys in
// graylane's etcd).
type ContentReader interface {
	// ReadContent returns the value at key, or an error wrapping
	// configsync.ErrNotFound.
	ReadContent(ctx context.Context, key string) ([]byte, error)
}

// Resolve reads the files of cfg (contentRef through r), validates the
// whole section with their content (formats, schemas, sizes, targets) and
// returns the bundle. Validation errors are *spec.ValidationError with
// paths like config.files[0].contentRef.
func Resolve(ctx context.Context, app string, cfg *spec.Config, r ContentReader) (Bundle, error) {
	resolved := map[int][]byte{}
	for i, f := range cfg.Files {
		if f.ContentRef == "" {
			continue
		}
		if r == nil {
			return Bundle{}, fmt.Errorf("config.files[%d].contentRef %s: no content store configured", i, f.ContentRef)
		}
		b, err := r.ReadContent(ctx, f.ContentRef)
		if err != nil {
			if isNotFound(err) {
				return Bundle{}, &spec.ValidationError{Errors: []spec.FieldError{{Path: fmt.Sprintf("config.files[%d].contentRef", i), Msg: fmt.Sprintf("etcd key %s does not exist", f.ContentRef)}}}
			}
			return Bundle{}, fmt.Errorf("read config.files[%d] (%s) from etcd key %s: %w", i, f.Name, f.ContentRef, err)
		}
		resolved[i] = b
	}
	if err := cfg.ValidateFor(app, resolved); err != nil {
		return Bundle{}, err
	}
	files := make([]File, 0, len(cfg.Files))
	for i, f := range cfg.Files {
		data := resolved[i]
		if f.Content != nil {
			data = []byte(*f.Content)
		}
		sum, err := FileDigest(f.FileFormat(), data)
		if err != nil {
			return Bundle{}, &spec.ValidationError{Errors: []spec.FieldError{{Path: fmt.Sprintf("config.files[%d]", i), Msg: err.Error()}}}
		}
		files = append(files, File{Name: f.Name, Format: f.FileFormat(), Content: string(data), SHA256: sum})
	}
	return NewBundle(files), nil
}

var errNotFound = errors.New("not found")

func isNotFound(err error) bool { return errors.Is(err, configsync.ErrNotFound) }
