package configwire

import (
	"testing"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/spec"
)

// graylane and an instance compute the same digests: a properties file's
// checksum ignores order and spacing (Apollo hands clients a key/value
// map), and a bundle's digest ignores the order of its files.
func TestDigestsAreCanonical(t *testing.T) {
	a, err := FileDigest(spec.FormatProperties, []byte("b=2\na = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := FileDigest(spec.FormatProperties, []byte("a=1\nb=2\n"))
	if a != b {
		t.Fatalf("properties digests differ for the same keys: %s %s", a, b)
	}
	y1, _ := FileDigest(spec.FormatYAML, []byte("a: 1\n"))
	y2, _ := FileDigest(spec.FormatYAML, []byte("a:  1\n"))
	if y1 == y2 {
		t.Fatal("yaml files are digested as written: different bytes, different digests")
	}
	f1 := File{Name: "app.yaml", Format: spec.FormatYAML, SHA256: y1}
	f2 := File{Name: "db.properties", Format: spec.FormatProperties, SHA256: a}
	if BundleDigest([]File{f1, f2}) != BundleDigest([]File{f2, f1}) {
		t.Fatal("bundle digest depends on file order")
	}
	if Short(y1) != y1[:ShortLen] || Short("abc") != "abc" {
		t.Fatalf("Short(%s) = %s", y1, Short(y1))
	}
}

func TestGrayLocationPerCentre(t *testing.T) {
	for _, tc := range []struct {
		centre    string
		stable    configsync.Location
		wantLoc   configsync.Location
		wantLabel string
	}{
		{"etcd", configsync.Location{Key: "/config/shop/app.yaml"}, configsync.Location{Key: "/config/shop/app.yaml@v2+b"}, ""},
		{"nacos", configsync.Location{Group: "G", DataID: "shop.yaml"}, configsync.Location{Group: "G", DataID: "shop-v2_b.yaml"}, ""},
		{"apollo", configsync.Location{AppID: "shop", Namespace: "application"}, configsync.Location{AppID: "shop", Namespace: "application"}, "v2+b"},
	} {
		loc, label := GrayLocation(tc.centre, tc.stable, "v2+b")
		if loc != tc.wantLoc || label != tc.wantLabel {
			t.Errorf("GrayLocation(%s, %v) = %v, %q; want %v, %q", tc.centre, tc.stable, loc, label, tc.wantLoc, tc.wantLabel)
		}
	}
	if got := NacosGrayDataID("shop", "v2"); got != "shop-v2" {
		t.Errorf("NacosGrayDataID without extension = %s", got)
	}
}
