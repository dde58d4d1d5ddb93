package randid

import "testing"

func TestHexLengthAndUniqueness(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := Hex(8)
		if len(id) != 16 {
			t.Fatalf("Hex(8) = %q, want 16 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("Hex(8) repeated %q within 1000 draws", id)
		}
		seen[id] = true
	}
}
