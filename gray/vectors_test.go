package gray

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/grayvectors"
)

// The published test vectors (docs/gray-vectors.json) other
// implementations (a Java gateway, graylane's proxy and nginx Lua) check
// themselves against; these tests recompute every one.

func TestBucketVectors(t *testing.T) {
	v := grayvectors.Load(t)
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
		if hb, _ := NewHasher(vec.Salt).Bucket(vec.Key); hb != b {
			t.Errorf("vector %d: Hasher.Bucket = %d, Bucket = %d", i, hb, b)
		}
	}
}

func baseDoc(salt string) *Document {
	return &Document{Schema: Schema, App: "app", Generation: 1, UserKey: UserKey{Header: DefaultUserHeader, Cookie: DefaultUserCookie},
		Bucketing: Bucketing{Hash: HashName, Salt: salt, Buckets: Buckets}}
}

func TestSplitVectors(t *testing.T) {
	v := grayvectors.Load(t)
	for i, vec := range v.SplitVectors {
		d := baseDoc("graylane")
		d.Split = vec.Split
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
	v := grayvectors.Load(t)
	for _, vec := range v.PercentVectors {
		if got := PercentThreshold(vec.Percent); got != vec.Threshold {
			t.Errorf("PercentThreshold(%v) = %d, want %d", vec.Percent, got, vec.Threshold)
		}
	}
}

// TestRouteVectors: requests with a user key in the header or the cookie
// are routed by the split with the user's bucket.
func TestRouteVectors(t *testing.T) {
	v := grayvectors.Load(t)
	for i, vec := range v.RouteVectors {
		d := baseDoc(vec.Salt)
		d.Split = vec.Split
		tab := Compile(d, Self{})
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if vec.Header != nil {
			req.Header[http.CanonicalHeaderKey(DefaultUserHeader)] = []string{*vec.Header}
		}
		if vec.Cookie != nil {
			req.Header["Cookie"] = []string{*vec.Cookie}
		}
		in := Input{Req: req}
		got := tab.Decide(&in)
		if got.Version != vec.Version || in.UserKey() != vec.Key || tab.Bucket(&in) != vec.Bucket {
			t.Errorf("route vector %d: %s (key %q, bucket %d), want %s (key %q, bucket %d)", i, got.Version, in.UserKey(), tab.Bucket(&in), vec.Version, vec.Key, vec.Bucket)
		}
	}
}

// TestRawKeyVectors: the key is the header's bytes; a gateway that sees
// them decoded as ISO-8859-1 must hash the bytes, not the characters.
func TestRawKeyVectors(t *testing.T) {
	v := grayvectors.Load(t)
	for _, vec := range v.RawKeyVectors {
		raw := make([]byte, 0, len(vec.Latin1))
		for _, r := range vec.Latin1 {
			raw = append(raw, byte(r))
		}
		if string(raw) != vec.UTF8 {
			t.Errorf("latin1 %q does not carry the bytes of %q", vec.Latin1, vec.UTF8)
		}
		if b, _ := Bucket(vec.Salt, string(raw)); b != vec.Bucket {
			t.Errorf("%q: bucket of its bytes %d, want %d", vec.UTF8, b, vec.Bucket)
		}
		if b, _ := Bucket(vec.Salt, vec.Latin1); b != vec.Wrong {
			t.Errorf("%q: bucket of the latin1 string as UTF-8 %d, want %d", vec.UTF8, b, vec.Wrong)
		}
	}
}

// TestDecisionVectors: the behaviours docs/gray.md specifies for rules
// (labels, client addresses, query parameters, headers, cookies, regexes,
// percentages), each on a request.
func TestDecisionVectors(t *testing.T) {
	v := grayvectors.Load(t)
	for _, vec := range v.DecisionVectors {
		t.Run(vec.Name, func(t *testing.T) {
			d := baseDoc("graylane")
			d.App = "shop"
			if err := json.Unmarshal(vec.Rules, &d.Rules); err != nil {
				t.Fatal(err)
			}
			d.Split, d.Preview = vec.Split, vec.Preview
			if err := d.Validate(); err != nil {
				t.Fatalf("vector document: %v", err)
			}
			req := httptest.NewRequest(http.MethodGet, "/?"+vec.Request.Query, nil)
			if vec.Request.RemoteAddr != "" {
				req.RemoteAddr = vec.Request.RemoteAddr
			}
			for name := range vec.Request.Headers {
				req.Header[http.CanonicalHeaderKey(name)] = vec.HeaderValues(name)
			}
			in := Input{Req: req, ClientIPHeader: vec.Request.ClientIPHeader}
			got := Compile(d, Self{}).Decide(&in)
			if got.Version != vec.Version || got.Reason.String() != vec.Reason {
				t.Fatalf("decided %s by %s, want %s by %s", got.Version, got.Reason, vec.Version, vec.Reason)
			}
		})
	}
}

// TestDocumentVectors: the validation rules of published documents, each
// refusal naming its field.
func TestDocumentVectors(t *testing.T) {
	v := grayvectors.Load(t)
	for _, vec := range v.DocumentVectors {
		t.Run(vec.Name, func(t *testing.T) {
			_, err := Parse(vec.Document)
			if vec.ErrorPath == nil {
				if err != nil {
					t.Fatalf("valid document refused: %v", err)
				}
				return
			}
			var verr *spec.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("got %v, want a refusal at %s", err, *vec.ErrorPath)
			}
			for _, fe := range verr.Errors {
				if fe.Path == *vec.ErrorPath {
					return
				}
			}
			t.Fatalf("refusal %v does not name %s", err, *vec.ErrorPath)
		})
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
