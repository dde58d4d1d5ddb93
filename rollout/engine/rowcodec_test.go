package engine

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
)

// TestSummaryCodecCoversEveryField fills every field of Summary with a
// value that is not zero and checks the row codec gives it back: a field
// added to Summary and not to encodeSummary fails here.
func TestSummaryCodecCoversEveryField(t *testing.T) {
	var s Summary
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Interface().(type) {
		case string, rollout.Phase:
			f.SetString(name + "-value ünïcode")
		case int:
			f.SetInt(int64(-7 - i))
		case bool:
			f.SetBool(true)
		case map[string]int:
			f.Set(reflect.ValueOf(map[string]int{"v2": 20, "v1": 80, "": 0}))
		case []VersionCount:
			f.Set(reflect.ValueOf([]VersionCount{{Version: "v2", Ready: 1, Total: 2}, {Version: "v1", Ready: 3, Total: 3}}))
		case []string:
			f.Set(reflect.ValueOf([]string{AttentionPaused, "other"}))
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2026, 12, 7, 21, 4, 5, 123456789, time.UTC)))
		default:
			t.Fatalf("Summary.%s is a %s: teach encodeSummary and this test about it", name, f.Type())
		}
	}
	got, err := decodeSummary(encodeSummary(s))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
}

func TestSummaryCodecEdges(t *testing.T) {
	// zero values stay zero: nil map and slices, the zero time
	got, err := decodeSummary(encodeSummary(Summary{App: "shop"}))
	if err != nil || !reflect.DeepEqual(got, Summary{App: "shop"}) {
		t.Fatalf("zero summary: %+v, %v", got, err)
	}
	// another zone: the same instant, back in UTC
	at := time.Date(2026, 12, 7, 21, 0, 0, 0, time.FixedZone("UTC+8", 8*3600))
	got, err = decodeSummary(encodeSummary(Summary{App: "shop", UpdatedAt: at}))
	if err != nil || !got.UpdatedAt.Equal(at) || got.UpdatedAt.Location() != time.UTC {
		t.Fatalf("updatedAt %v (%v), want %v in UTC", got.UpdatedAt, err, at)
	}
	// a broken encoding is an error, wherever it is cut
	full := encodeSummary(Summary{App: "shop", Weights: map[string]int{"v1": 100}, Message: strings.Repeat("m", 300)})
	for cut := range len(full) {
		if _, err := decodeSummary(full[:cut]); err == nil {
			t.Fatalf("cut at byte %d of %d decoded without an error", cut, len(full))
		}
	}
	if _, err := decodeSummary(append(full, 0)); err == nil {
		t.Fatal("a trailing byte decoded without an error")
	}
}
