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
	// BaseDigest identifies the files before the environment's overlay
	// (spec config.overlay) was laid over them: the release bundle's own
	// files, the same in every environment. Empty when no overlay changed
	// anything (then it equals Digest).
	BaseDigest string `json:"baseDigest,omitempty"`
}

// Base returns the digest of the bundle's files before any overlay.
func (b *Bundle) Base() string {
	if b.BaseDigest != "" {
		return b.BaseDigest
	}
	return b.Digest
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
// whole section with their content (formats, schemas, sizes, targets,
// overlay) and returns the effective bundle: the files with the section's
// overlay laid over them, which is what targets hold and instances
// report (BaseDigest names the files before it). Validation errors are
// *spec.ValidationError with paths like config.files[0].contentRef.
func Resolve(ctx context.Context, app string, cfg *spec.Config, r ContentReader) (Bundle, error) {
	base, err := ResolveBase(ctx, app, cfg, r)
	if err != nil || len(cfg.Overlay) == 0 {
		return base, err
	}
	files := make([]configwire.File, 0, len(base.Files))
	for _, f := range base.Files {
		data, err := cfg.Effective(f.Name, f.Format, []byte(f.Content))
		if err != nil {
			return Bundle{}, &spec.ValidationError{Errors: []spec.FieldError{{Path: "config.overlay." + f.Name, Msg: err.Error()}}}
		}
		sum, err := configwire.FileDigest(f.Format, data)
		if err != nil {
			return Bundle{}, &spec.ValidationError{Errors: []spec.FieldError{{Path: "config.overlay." + f.Name, Msg: err.Error()}}}
		}
		files = append(files, configwire.File{Name: f.Name, Format: f.Format, Content: string(data), SHA256: sum})
	}
	eff := NewBundle(files)
	if eff.Digest != base.Digest {
		eff.BaseDigest = base.Digest
	}
	return eff, nil
}

// ResolveBase is Resolve without the overlay: the release bundle's own
// files, as a promotion carries them from one environment to the next.
func ResolveBase(ctx context.Context, app string, cfg *spec.Config, r ContentReader) (Bundle, error) {
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
