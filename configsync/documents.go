package configsync

import (
	"context"
	"fmt"
	"strings"
)

// Location names one document in a config centre, beyond release specs:
// gray rules graylane publishes, and config files bound to a code version.
// Each centre reads the fields it uses:
//
//	etcd:   Key                                   e.g. /config/shop/application.yaml
//	nacos:  Namespace, Group, DataID              e.g. public / DEFAULT_GROUP / shop.yaml
//	apollo: AppID, Cluster, Namespace, and Key    Key names an item of a properties
//	                                              namespace; empty Key means the whole
//	                                              content of a yaml/json/txt namespace
type Location struct {
	Key       string `json:"key,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Group     string `json:"group,omitempty"`
	DataID    string `json:"dataId,omitempty"`
	AppID     string `json:"appId,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
}

func (l Location) String() string {
	var parts []string
	for _, f := range []struct{ k, v string }{{"appId", l.AppID}, {"cluster", l.Cluster}, {"namespace", l.Namespace}, {"group", l.Group}, {"dataId", l.DataID}, {"key", l.Key}} {
		if f.v != "" {
			parts = append(parts, f.k+"="+f.v)
		}
	}
	return strings.Join(parts, ",")
}

// Doc is a document's content and its version in the centre (etcd mod
// revision, Nacos MD5, Apollo release key or item revision).
type Doc struct {
	Data    []byte
	Version string
}

// Documents reads and writes documents at arbitrary locations of one
// centre. Contract (the same for every centre):
//   - Read returns an error wrapping ErrNotFound for a missing document and
//     ErrUnavailable when the centre cannot be reached.
//   - Write makes data visible to the centre's clients (Apollo: item write
//     plus a release) and returns its new version. expect is "" for an
//     unconditional write, Absent to require that nothing exists, or a
//     version read earlier; a mismatch returns ErrConflict and writes
//     nothing. Centres without native compare-and-swap document how close
//     they come.
//   - Delete removes the document; a missing document is not an error.
//   - All three are idempotent for the same arguments.
type Documents interface {
	// Centre names the centre: "etcd", "nacos", "apollo".
	Centre() string
	Read(ctx context.Context, loc Location) (Doc, error)
	Write(ctx context.Context, loc Location, data []byte, expect string) (Doc, error)
	Delete(ctx context.Context, loc Location, expect string) error
}

// CheckLocation reports a location that names nothing for the given centre.
func CheckLocation(centre string, l Location) error {
	switch centre {
	case "etcd":
		if l.Key == "" || !strings.HasPrefix(l.Key, "/") {
			return fmt.Errorf("etcd location needs a key starting with / (got %q)", l.Key)
		}
	case "nacos":
		if l.DataID == "" {
			return fmt.Errorf("nacos location needs a dataId")
		}
	case "apollo":
		if l.AppID == "" || l.Namespace == "" {
			return fmt.Errorf("apollo location needs an appId and a namespace")
		}
	default:
		return fmt.Errorf("unknown centre %q", centre)
	}
	return nil
}

// ReadBacker is implemented by Documents whose Read may answer from a
// client-side cache (read-your-writes): ReadBack asks the centre, as its
// clients would, so that a write is only trusted once the centre serves it.
type ReadBacker interface {
	ReadBack(ctx context.Context, loc Location) (Doc, error)
}
