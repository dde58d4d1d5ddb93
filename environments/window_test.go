package environments

import (
	"strings"
	"testing"
	"time"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Windows are judged in their own zone: 2026-12-07 is a Monday.
func TestWindowContains(t *testing.T) {
	for _, tc := range []struct {
		window, at string
		open       bool
	}{
		{"Mon-Thu 10:00-16:00 Asia/Shanghai", "2026-12-07T02:00:00Z", true},  // Mon 10:00 Shanghai
		{"Mon-Thu 10:00-16:00 Asia/Shanghai", "2026-12-07T01:59:00Z", false}, // Mon 09:59
		{"Mon-Thu 10:00-16:00 Asia/Shanghai", "2026-12-07T08:00:00Z", false}, // Mon 16:00, end excluded
		{"Mon-Thu 10:00-16:00 Asia/Shanghai", "2026-12-11T03:00:00Z", false}, // Fri
		{"Mon-Thu 10:00-16:00 Asia/Shanghai", "2026-12-06T19:00:00Z", false}, // Sun 19:00 UTC = Mon 03:00
		{"Fri-Mon 09:00-10:00", "2026-12-13T09:30:00Z", true},                // Sun, inside a wrapping day range
		{"Mon,Wed 09:00-10:00", "2026-12-08T09:30:00Z", false},               // Tue
		{"daily 22:00-02:00 Europe/Berlin", "2026-12-07T23:30:00Z", true},    // 00:30 Tue Berlin, started Mon
		{"daily 22:00-02:00 Europe/Berlin", "2026-12-07T12:00:00Z", false},
		{"Sun 23:00-01:00", "2026-12-07T00:30:00Z", true}, // Mon 00:30, the Sunday window
		{"Sun 23:00-01:00", "2026-12-08T00:30:00Z", false},
	} {
		w, err := ParseWindow(tc.window)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", tc.window, err)
		}
		if got := w.Contains(at(t, tc.at)); got != tc.open {
			t.Errorf("%q at %s: open %v, want %v", tc.window, tc.at, got, tc.open)
		}
	}
}

func TestWindowNext(t *testing.T) {
	w, _ := ParseWindow("Mon-Thu 10:00-16:00 Asia/Shanghai")
	for _, tc := range []struct{ from, want string }{
		{"2026-12-07T01:00:00Z", "2026-12-07T02:00:00Z"}, // Mon 09:00 -> Mon 10:00
		{"2026-12-07T03:00:00Z", "2026-12-07T03:00:00Z"}, // open now
		{"2026-12-10T09:00:00Z", "2026-12-14T02:00:00Z"}, // Thu 17:00 -> next Mon
	} {
		got, ok := w.Next(at(t, tc.from))
		if !ok || !got.Equal(at(t, tc.want)) {
			t.Errorf("Next(%s) = %s, %v; want %s", tc.from, got.UTC().Format(time.RFC3339), ok, tc.want)
		}
	}
}

func TestBadWindows(t *testing.T) {
	for _, s := range []string{"", "Mon", "Mon 10:00", "Xyz 10:00-11:00", "Mon 25:00-26:00", "Mon 10:0-11:00", "Mon 10:00-11:00 Mars/Olympus", "Mon 10:00-11:00 UTC extra"} {
		if _, err := ParseWindow(s); err == nil {
			t.Errorf("ParseWindow(%q) accepted a bad window", s)
		}
	}
	_, err := ParseWindow("Mon 10:00-11:00 Asia/Nowhere")
	if err == nil || !strings.Contains(err.Error(), "IANA") {
		t.Errorf("bad zone error %v does not say what a zone is", err)
	}
}
