package records

import (
	"testing"

	"github.com/graylane/graylane/spec"
)

// BenchmarkSpecText is the cost of rendering a release for a revision
// record. A pass that starts a new document's revision needed three (the
// spec in force, the new one for the cause's diff, the new one again for
// the revision); it now renders one, reusing the new one's text and the
// revision log's text of the spec in force (Log.SpecDigest).
func BenchmarkSpecText(b *testing.B) {
	rel, err := spec.Parse([]byte(canary))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if SpecText(rel) == "" {
			b.Fatal("empty text")
		}
	}
}
