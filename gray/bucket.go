package gray

import "math"

// Bucketing constants. They are part of the published format: changing any
// of them moves users between versions, so they never change within a
// schema version.
const (
	// Buckets is the number of user buckets: 10000, so percentages have a
	// granularity of 0.01%.
	Buckets = 10000
	// HashName names the bucketing hash in published documents.
	HashName = "fnv1a64-fmix64"

	fnvOffset64 = 0xcbf29ce484222325
	fnvPrime64  = 0x100000001b3
)

// Bucket returns the user bucket of key, 0..Buckets-1:
//
//	k     = NormalizeKey(key)
//	h     = FNV-1a 64 over the bytes of salt, then ':' (0x3A), then k
//	h     = fmix64(h)            (MurmurHash3's 64-bit finaliser)
//	bucket = h mod 10000         (h unsigned)
//
// with fmix64(h) = h ^= h>>33; h *= 0xff51afd7ed558ccd; h ^= h>>33;
// h *= 0xc4ceb9fe1a85ec53; h ^= h>>33 (64-bit wrapping multiplication,
// logical shifts). ok is false for a key that is empty after
// normalisation (no user key: the caller picks a random bucket).
//
// docs/gray.md has a Java version and docs/gray-vectors.json test vectors.
func Bucket(salt, key string) (bucket int, ok bool) {
	key = NormalizeKey(key)
	if key == "" {
		return 0, false
	}
	return int(fmix64(fnv1a64(salt, key)) % Buckets), true
}

// Hasher is Bucket with its salt folded in once: what a router keeps per
// app, so that bucketing a request costs one pass over its key. Make it
// with NewHasher.
type Hasher struct{ state uint64 }

// NewHasher returns the bucketing function of salt.
func NewHasher(salt string) Hasher { return Hasher{state: saltState(salt)} }

// State is the FNV-1a 64 state after the salt and ':', from which a key's
// bytes continue the hash: implementations that precompute it per app
// (graylane's nginx Lua) start from it.
func (h Hasher) State() uint64 { return h.state }

// Bucket returns the bucket of key, exactly Bucket(salt, key).
func (h Hasher) Bucket(key string) (int, bool) {
	x, ok := h.Hash(key)
	return int(x % Buckets), ok
}

// Hash returns fmix64(FNV-1a 64(salt ':' NormalizeKey(key))), whose value
// mod Buckets is the bucket; its high bits are a second number a router
// may use (they do not follow the bucket). ok is false for a key that is
// empty after normalisation.
func (h Hasher) Hash(key string) (uint64, bool) {
	key = NormalizeKey(key)
	if key == "" {
		return 0, false
	}
	return fmix64(fnvMore(h.state, key)), true
}

// fnv1a64 hashes salt, ':' and key with FNV-1a 64.
func fnv1a64(salt, key string) uint64 { return fnvMore(saltState(salt), key) }

// saltState is the FNV-1a 64 state after salt and ':' (a table computes
// it once).
func saltState(salt string) uint64 {
	return fnvMore(fnvOffset64, salt+":")
}

func fnvMore(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// bucketFrom finishes the bucket of a normalised, non-empty key from a
// salt state.
func bucketFrom(state uint64, key string) int {
	return int(fmix64(fnvMore(state, key)) % Buckets)
}

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// NormalizeKey trims leading and trailing spaces, tabs, carriage returns
// and line feeds (bytes 0x20, 0x09, 0x0D, 0x0A) from a user key and keeps
// everything else byte for byte: case is significant, nothing is decoded.
// If your user IDs are case-insensitive, send them lower-cased.
func NormalizeKey(key string) string {
	start, end := 0, len(key)
	for start < end && isSpace(key[start]) {
		start++
	}
	for end > start && isSpace(key[end-1]) {
		end--
	}
	return key[start:end]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// PercentThreshold converts a weight in percent (0..100, at most two
// decimals) to buckets: round(percent*100).
func PercentThreshold(percent float64) int {
	t := int(math.Round(percent * 100))
	if t > Buckets {
		t = Buckets
	}
	if t < 0 {
		t = 0
	}
	return t
}
