package gray

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// vectorsFile is the published test vectors other implementations (a Java
// gateway) check themselves against; this test recomputes every one.
var vectorsFile = filepath.Join("..", "docs", "gray-vectors.json")

type vectors struct {
	Buckets       int `json:"buckets"`
	BucketVectors []struct {
		Salt    string `json:"salt"`
		Key     string `json:"key"`
		FNV     string `json:"fnv1a64"`
		Fmix    string `json:"fmix64"`
		Bucket  *int   `json:"bucket"`
		Comment string `json:"comment"`
	} `json:"bucketVectors"`
	SplitVectors []struct {
		Split   []traffic.VersionWeight `json:"split"`
		Bucket  int                     `json:"bucket"`
		Version string                  `json:"version"`
	} `json:"splitVectors"`
	PercentVectors []struct {
		Percent   float64 `json:"percent"`
		Threshold int     `json:"threshold"`
	} `json:"percentVectors"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("read %s: %v", vectorsFile, err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", vectorsFile, err)
	}
	if len(v.BucketVectors) < 20 || len(v.SplitVectors) < 10 || len(v.PercentVectors) < 5 {
		t.Fatalf("%s holds too few vectors: %d bucket, %d split, %d percent", vectorsFile, len(v.BucketVectors), len(v.SplitVectors), len(v.PercentVectors))
	}
	return v
}

func TestBucketVectors(t *testing.T) {
	v := loadVectors(t)
	if v.Buckets != Buckets {
		t.Fatalf("vectors are for %d buckets, the code has %d", v.Buckets, Buckets)
	}
	for i, vec := range v.BucketVectors {
		b, ok := Bucket(vec.Salt, vec.Key)
		if vec.Bucket == nil {
			if ok {
				t.Errorf("vector %d (salt %q, key %q): got bucket %d, want none (empty key)", i, vec.Salt, vec.Key, b)
			}
			continue
		}
		if !ok || b != *vec.Bucket {
			t.Errorf("vector %d (salt %q, key %q): got bucket %d (ok %v), want %d", i, vec.Salt, vec.Key, b, ok, *vec.Bucket)
		}
		h := fnv1a64(vec.Salt, NormalizeKey(vec.Key))
		if got := fmt.Sprintf("%016x", h); got != vec.FNV {
			t.Errorf("vector %d: fnv1a64 = %s, want %s", i, got, vec.FNV)
		}
		if got := fmt.Sprintf("%016x", fmix64(h)); got != vec.Fmix {
			t.Errorf("vector %d: fmix64 = %s, want %s", i, got, vec.Fmix)
		}
	}
}

func TestSplitVectors(t *testing.T) {
	v := loadVectors(t)
	for i, vec := range v.SplitVectors {
		d := &Document{Schema: Schema, App: "app", Bucketing: Bucketing{Hash: HashName, Salt: "graylane", Buckets: Buckets}, Split: vec.Split}
		tab := Compile(d, Self{})
		in := Input{}
		in.haveBucket, in.salt, in.b = true, tab.salt, vec.Bucket // force the bucket
		in.keyHeader, in.keyCookie = tab.userHeader, tab.userCookie
		if got := tab.Decide(&in); got.Version != vec.Version || got.Reason != BySplit {
			t.Errorf("split vector %d (%v, bucket %d) = %+v, want %s", i, vec.Split, vec.Bucket, got, vec.Version)
		}
	}
}

func TestPercentVectors(t *testing.T) {
	v := loadVectors(t)
	for _, vec := range v.PercentVectors {
		if got := PercentThreshold(vec.Percent); got != vec.Threshold {
			t.Errorf("PercentThreshold(%v) = %d, want %d", vec.Percent, got, vec.Threshold)
		}
	}
}

// TestBucketsAreUniform: over 200k sequential user IDs every decile of
// buckets holds 10% of users within 0.5 points, so a 20% split puts 20%
// of users on the canary.
func TestBucketsAreUniform(t *testing.T) {
	const n = 200000
	var deciles [10]int
	for i := 0; i < n; i++ {
		b, _ := Bucket(spec.DefaultGraySalt, fmt.Sprintf("user-%d", i))
		deciles[b/1000]++
	}
	for d, c := range deciles {
		if share := float64(c) / n; share < 0.095 || share > 0.105 {
			t.Errorf("decile %d holds %.2f%% of users, want 10%% ± 0.5", d, share*100)
		}
	}
}
