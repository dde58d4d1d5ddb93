package records

import (
	"crypto/sha256"
	"encoding/hex"
)

// DocumentDigest identifies a document's content: the key of its intent.
// It is known before the centre is written (an etcd revision is not), so
// the intent can be in place before the engine can see the document.
func DocumentDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}
