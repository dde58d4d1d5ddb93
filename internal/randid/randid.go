// Package randid is graylane's one random-identifier helper (command IDs,
// write-ahead records, probe names, upload directories, instance nonces).
//
// Entry point: Hex.
package randid

import (
	"crypto/rand"
	"encoding/hex"
)

// Hex returns n random bytes from crypto/rand as 2n hex digits. It never
// fails: crypto/rand.Read does not return an error on the systems Go
// supports.
func Hex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
