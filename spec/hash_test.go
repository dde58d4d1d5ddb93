package spec

import (
	"encoding/json"
	"testing"
)

// HashJSON of a release's stored JSON is the release's Hash: the engine
// compares a record's stored spec with a revision log's digest without
// decoding the spec.
func TestHashJSONIsHashOfTheEncoding(t *testing.T) {
	r := &Release{App: "shop", Version: "v2"}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := HashJSON(b), r.Hash(); got != want || len(got) != 16 {
		t.Fatalf("HashJSON = %q, Hash = %q", got, want)
	}
	r.Version = "v3"
	if HashJSON(b) == r.Hash() {
		t.Fatal("a changed release hashes like the old encoding")
	}
}
