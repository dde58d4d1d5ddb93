package config_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/sdk/config"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func digest(t *testing.T, files ...configwire.File) string {
	t.Helper()
	for i := range files {
		sum, err := configwire.FileDigest(files[i].Format, []byte(files[i].Content))
		if err != nil {
			t.Fatal(err)
		}
		files[i].SHA256 = sum
	}
	return configwire.BundleDigest(files)
}

// waitFor receives snapshots until one satisfies ok.
func waitFor(t *testing.T, ch <-chan config.Snapshot, what string, ok func(config.Snapshot) bool) config.Snapshot {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no snapshot with %s", what)
		}
	}
}

func TestLoaderFollowsVersionBoundCopyInEtcd(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := etcdtest.Start(t)
	cli := srv.Client()
	put := func(k, v string) {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	put("/config/shop/app.yaml", "greeting: stable\n")
	put("/config/shop/flags.properties", "b = 2\na=1\n")
	l, err := config.New(ctx, config.Config{App: "shop", Identity: "v2", Interval: 50 * time.Millisecond,
		Files:   []config.File{{Name: "app.yaml"}, {Name: "flags.properties"}},
		Sources: []config.Source{config.Etcd(cli, "/config/{{.App}}/{{.File}}")}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan config.Snapshot, 16)
	l.OnChange(func(s config.Snapshot) { ch <- s })
	flags := configwire.File{Name: "flags.properties", Format: "properties", Content: "a=1\nb=2\n"}
	stable := digest(t, configwire.File{Name: "app.yaml", Format: "yaml", Content: "greeting: stable\n"}, flags)
	s := waitFor(t, ch, "the stable config", func(s config.Snapshot) bool { return s.Checksum == stable })
	if string(s.Files["app.yaml"]) != "greeting: stable\n" || len(s.Sources[0].Gray) != 0 {
		t.Fatalf("stable snapshot %+v", s)
	}
	// graylane writes the copy bound to v2: this instance (v2) reloads it
	put("/config/shop/app.yaml@v2", "greeting: canary\n")
	gray := digest(t, configwire.File{Name: "app.yaml", Format: "yaml", Content: "greeting: canary\n"}, flags)
	s = waitFor(t, ch, "the v2 copy", func(s config.Snapshot) bool { return s.Checksum == gray })
	if len(s.Sources[0].Gray) != 1 || s.Sources[0].Gray[0] != "app.yaml" {
		t.Fatalf("gray files %v", s.Sources[0].Gray)
	}
	// the report graylane reads
	rec := httptest.NewRecorder()
	l.Handler().ServeHTTP(rec, httptest.NewRequest("GET", spec.DefaultConfigReportPath, nil))
	var r configwire.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Checksum != gray || r.Identity != "v2" || r.Files["app.yaml"] == "" {
		t.Fatalf("report %s (%v)", rec.Body, err)
	}
	// a file that goes missing: no checksum, the last content is kept
	if _, err := cli.Delete(ctx, "/config/shop/flags.properties"); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, ch, "a missing file", func(s config.Snapshot) bool { return s.Checksum == "" })
	if s.Err == nil || string(s.Files["app.yaml"]) != "greeting: canary\n" {
		t.Fatalf("incomplete snapshot %+v", s)
	}
}

func TestLoaderApolloLabel(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := apolloserver.New(apolloserver.Options{})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	for _, err := range []error{srv.CreateApp("shop", ""), srv.CreateToken("tok"), srv.GrantApp("tok", "shop")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.CreateNamespace("shop", "app", apolloserver.FormatYAML); err != nil {
		t.Fatal(err)
	}
	docs, err := apollo.NewDocuments(apollo.DocumentsConfig{Portal: srv.PortalURL(), Token: "tok", ConfigService: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loc := configsync.Location{AppID: "shop", Namespace: "app.yaml"}
	if _, err := docs.Write(ctx, loc, []byte("greeting: stable\n"), ""); err != nil {
		t.Fatal(err)
	}
	src, err := config.Apollo(config.ApolloConfig{ConfigService: srv.URL()}, spec.ApolloConfigTarget{Namespace: "{{.File}}"})
	if err != nil {
		t.Fatal(err)
	}
	load := func(id string) (*config.Loader, chan config.Snapshot) {
		l, err := config.New(ctx, config.Config{App: "shop", Identity: id, Interval: 50 * time.Millisecond,
			Files: []config.File{{Name: "app.yaml"}}, Sources: []config.Source{src}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		ch := make(chan config.Snapshot, 16)
		l.OnChange(func(s config.Snapshot) { ch <- s })
		return l, ch
	}
	_, v1 := load("v1")
	_, v2 := load("v2")
	if err := docs.WriteGray(ctx, loc, "v2", []byte("greeting: canary\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, v2, "v2's gray copy", func(s config.Snapshot) bool {
		return string(s.Files["app.yaml"]) == "greeting: canary\n" && len(s.Sources[0].Gray) == 1
	})
	s := waitFor(t, v1, "the stable config", func(s config.Snapshot) bool { return s.Checksum != "" })
	if string(s.Files["app.yaml"]) != "greeting: stable\n" {
		t.Fatalf("v1 loaded %q", s.Files["app.yaml"])
	}
}
