package grayvectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// Vectors is docs/gray-vectors.json.
type Vectors struct {
	Buckets         int             `json:"buckets"`
	BucketVectors   []Bucket        `json:"bucketVectors"`
	SplitVectors    []Split         `json:"splitVectors"`
	PercentVectors  []Percent       `json:"percentVectors"`
	RouteVectors    []Route         `json:"routeVectors"`
	RawKeyVectors   []RawKey        `json:"rawKeyVectors"`
	DecisionVectors []Decision      `json:"decisionVectors"`
	DocumentVectors []Document      `json:"documentVectors"`
	Notes           json.RawMessage `json:"notes"`
}

// Bucket is one bucket vector, with the intermediate hashes.
type Bucket struct {
	Salt    string `json:"salt"`
	Key     string `json:"key"`
	FNV     string `json:"fnv1a64"`
	Fmix    string `json:"fmix64"`
	Bucket  *int   `json:"bucket"` // nil: the key is empty
	Comment string `json:"comment"`
}

// Split is one split vector: a bucket's version.
type Split struct {
	Split   []traffic.VersionWeight `json:"split"`
	Bucket  int                     `json:"bucket"`
	Version string                  `json:"version"`
}

// Percent is one percent threshold vector.
type Percent struct {
	Percent   float64 `json:"percent"`
	Threshold int     `json:"threshold"`
}

// Route is one request every layer must route to Version: the user key
// comes from Header (X-Gray-User), else from Cookie (a Cookie header
// line).
type Route struct {
	Salt    string                  `json:"salt"`
	Header  *string                 `json:"header"`
	Cookie  *string                 `json:"cookie"`
	Key     string                  `json:"key"`
	Bucket  int                     `json:"bucket"`
	Split   []traffic.VersionWeight `json:"split"`
	Version string                  `json:"version"`
}

// RawKey is a non-ASCII key as a servlet container decoding headers as
// ISO-8859-1 hands it over.
type RawKey struct {
	Salt   string `json:"salt"`
	Latin1 string `json:"latin1"`
	UTF8   string `json:"utf8"`
	Bucket int    `json:"bucket"`
	Wrong  int    `json:"bucketIfDecodedAsLatin1"`
}

// Decision is a document deciding one request.
type Decision struct {
	Name    string                  `json:"name"`
	Rules   json.RawMessage         `json:"rules"`
	Split   []traffic.VersionWeight `json:"split"`
	Preview string                  `json:"preview"`
	Request struct {
		Headers        map[string]json.RawMessage `json:"headers"` // a string or a list
		Query          string                     `json:"query"`
		RemoteAddr     string                     `json:"remoteAddr"`
		ClientIPHeader string                     `json:"clientIPHeader"`
	} `json:"request"`
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// HeaderValues returns the request's values of one header.
func (d Decision) HeaderValues(name string) []string {
	raw := d.Request.Headers[name]
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// Document is a published document that gray.Parse must accept
// (ErrorPath nil) or refuse naming ErrorPath.
type Document struct {
	Name      string          `json:"name"`
	Document  json.RawMessage `json:"document"`
	ErrorPath *string         `json:"errorPath"`
}

// Path is the vectors file.
func Path(t testing.TB) string {
	return filepath.Join(testenv.RepoRoot(t), "docs", "gray-vectors.json")
}

// Load reads the vectors, failing the test when the file is missing or
// holds too few of a kind.
func Load(t testing.TB) Vectors {
	t.Helper()
	b, err := os.ReadFile(Path(t))
	if err != nil {
		t.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", Path(t), err)
	}
	if len(v.BucketVectors) < 20 || len(v.SplitVectors) < 10 || len(v.PercentVectors) < 5 || len(v.RouteVectors) < 30 ||
		len(v.RawKeyVectors) < 3 || len(v.DecisionVectors) < 20 || len(v.DocumentVectors) < 10 {
		t.Fatalf("%s holds too few vectors", Path(t))
	}
	return v
}
