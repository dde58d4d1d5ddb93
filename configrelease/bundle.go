package configrelease

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/spec"
)

// IdentitySeparator joins a code version and a config digest in a release
// identity: "v1_cfg0a1b2c3d" is code v1 with a config other than the one
// v1 was first released with. It is valid in a version, a Nacos dataId,
// an Apollo label and a Kubernetes label value.
const IdentitySeparator = "_cfg"

// identityDigestLen is how many hex digits of the digest an identity
// carries.
const identityDigestLen = configwire.ShortLen

// Bundle is the set of config files bound to one release identity.
type Bundle struct {
	// Files, sorted by name.
	Files []configwire.File `json:"files"`
	// Digest identifies the set (BundleDigest): what instances report.
	Digest string `json:"digest"`
}

// File returns the named file, or nil.
func (b *Bundle) File(name string) *configwire.File {
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

// NewBundle builds a bundle from files whose SHA256 is set.
func NewBundle(files []configwire.File) Bundle {
	fs := append([]configwire.File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return Bundle{Files: fs, Digest: configwire.BundleDigest(fs)}
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
	files := make([]configwire.File, 0, len(cfg.Files))
	for i, f := range cfg.Files {
		data := resolved[i]
		if f.Content != nil {
			data = []byte(*f.Content)
		}
		sum, err := configwire.FileDigest(f.FileFormat(), data)
		if err != nil {
			return Bundle{}, &spec.ValidationError{Errors: []spec.FieldError{{Path: fmt.Sprintf("config.files[%d]", i), Msg: err.Error()}}}
		}
		files = append(files, configwire.File{Name: f.Name, Format: f.FileFormat(), Content: string(data), SHA256: sum})
	}
	return NewBundle(files), nil
}

var errNotFound = errors.New("not found")

func isNotFound(err error) bool { return errors.Is(err, configsync.ErrNotFound) }
