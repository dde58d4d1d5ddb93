package polaris

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/graylane/graylane/testsupport/testenv"
)

func TestSetYAML(t *testing.T) {
	doc := strings.Split(`a:
  b:
    open: true
  c:
    open: true # keep
list:
  - name: x
    open: true
b:
  open: true`, "\n")
	if err := setYAML(doc, []string{"a", "c", "open"}, "false"); err != nil {
		t.Fatal(err)
	}
	if err := setYAML(doc, []string{"b", "open"}, "1"); err != nil {
		t.Fatal(err)
	}
	if err := setYAML(doc, []string{"a", "missing"}, "1"); err == nil {
		t.Fatal("missing key: no error")
	}
	want := "a:\n  b:\n    open: true\n  c:\n    open: false\nlist:\n  - name: x\n    open: true\nb:\n  open: 1"
	if got := strings.Join(doc, "\n"); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestWriteConf applies the edits to upstream's real release conf.
func TestWriteConf(t *testing.T) {
	testenv.IntegrationTest(t)
	_, src, err := build()
	if err != nil {
		testenv.Unavailable(t, "polaris build: %v", err)
	}
	dir := t.TempDir()
	p := Ports{Eureka: 1001, HTTP: 1002, ServiceGRPC: 1003, ConfigGRPC: 1004, XDS: 1005, Nacos: 1006}
	file, err := writeConf(src, dir, p, options{nacosRequestLog: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"self_address: 127.0.0.1",
		"listenPort: 1001", "listenPort: 1002", "listenPort: 1003", "listenPort: 1004", "listenPort: 1005", "listenPort: 1006",
		"path: " + filepath.Join(dir, "data", "polaris.bolt"),
		"contentMaxLength: 1048576",
		"outputLevel: debug", // WithNacosRequestLog
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("conf lacks %q", want)
		}
	}
	if strings.Contains(conf, "0.0.0.0") || strings.Contains(conf, "\r") {
		t.Error("conf still listens on 0.0.0.0 or has CRLF line endings")
	}
	// naming.batch.register is the only "register:" key in the file.
	lines := strings.Split(conf, "\n")
	n := 0
	for i, l := range lines {
		if strings.TrimSpace(l) == "register:" {
			n++
			if strings.TrimSpace(lines[i+1]) != "open: false" {
				t.Errorf("naming.batch.register.open: %q", lines[i+1])
			}
		}
	}
	if n != 1 {
		t.Errorf("%d register: keys", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "conf", "i18n")); err != nil {
		t.Errorf("i18n not copied: %v", err)
	}
}

// Free ports can be any of upstream's defaults: a port chosen for one
// listener that equals another listener's default (15010 is XDS's, 8848
// Nacos') must not be rewritten again.
func TestWriteConfPortsEqualToUpstreamDefaults(t *testing.T) {
	testenv.IntegrationTest(t)
	_, src, err := build()
	if err != nil {
		testenv.Unavailable(t, "polaris build: %v", err)
	}
	p := Ports{Eureka: 8848, HTTP: 15010, ServiceGRPC: 8761, ConfigGRPC: 8090, XDS: 8093, Nacos: 8091}
	file, err := writeConf(src, t.TempDir(), p, options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "listenPort: "); ok {
			got = append(got, v)
		}
	}
	want := []string{"8848", "15010", "8761", "8090", "8093", "8091"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listenPorts %v, want each chosen port once: %v", got, want)
	}
}
