package apollo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/apolloserver"
	"github.com/graylane/graylane/testsupport/testenv"
)

const docsApp = "shop"

// docsServer is the test Apollo with app shop, a properties namespace
// "application" and a token granted on the app (branches need an app
// grant).
func docsServer(t *testing.T) (*apolloserver.Server, *Documents) {
	t.Helper()
	srv := newServer(t, apolloserver.Options{})
	must(t, srv.CreateApp(docsApp, ""))
	must(t, srv.CreateToken(testToken))
	must(t, srv.GrantApp(testToken, docsApp))
	d, err := NewDocuments(DocumentsConfig{Portal: srv.PortalURL(), Token: testToken, ConfigService: srv.URL(), Logger: testLogger(t)})
	must(t, err)
	return srv, d
}

func TestDocumentsConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	for _, mode := range []string{"item", "content"} {
		t.Run(mode, func(t *testing.T) {
			var n atomic.Int64
			sourcetest.RunDocuments(t, func(t *testing.T) *sourcetest.DocumentsHarness {
				srv, d := docsServer(t)
				return &sourcetest.DocumentsHarness{
					Docs: d,
					Location: func(name string) configsync.Location {
						i := n.Add(1)
						if mode == "item" {
							return configsync.Location{AppID: docsApp, Namespace: "application", Key: fmt.Sprintf("%s-%d", name, i)}
						}
						ns, err := srv.CreateNamespace(docsApp, fmt.Sprintf("%s-%d", name, i), apolloserver.FormatYAML)
						must(t, err)
						return configsync.Location{AppID: docsApp, Namespace: ns}
					},
				}
			})
		})
	}
}

// clientRead reads a namespace from the config service as an Apollo client
// with the given label does, and returns the content item and the cluster
// (or gray branch) that answered.
func clientRead(t *testing.T, srv *apolloserver.Server, ns, label string) (string, string) {
	t.Helper()
	u := srv.URL() + "configs/" + docsApp + "/default/" + url.PathEscape(ns) + "?" + url.Values{"label": {label}}.Encode()
	resp, err := http.Get(u)
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", ""
	}
	var dto struct {
		Cluster        string            `json:"cluster"`
		Configurations map[string]string `json:"configurations"`
	}
	must(t, json.NewDecoder(resp.Body).Decode(&dto))
	return dto.Configurations[ContentKey], dto.Cluster
}

func TestDocumentsGrayByLabel(t *testing.T) {
	testenv.IntegrationTest(t)
	srv, d := docsServer(t)
	ns, err := srv.CreateNamespace(docsApp, "app", apolloserver.FormatYAML)
	must(t, err)
	loc := configsync.Location{AppID: docsApp, Namespace: ns}
	c := context.Background()
	if _, err := d.Write(c, loc, []byte("greeting: v1\n"), configsync.Absent); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadGray(c, loc, "v2"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("ReadGray before any branch: %v", err)
	}
	must(t, d.WriteGray(c, loc, "v2", []byte("greeting: v2\n")))
	// clients labelled v2 read the copy; others (and other labels) the stable one
	if got, cluster := clientRead(t, srv, ns, "v2"); got != "greeting: v2\n" || cluster == "default" {
		t.Fatalf("label v2 reads %q from %s", got, cluster)
	}
	for _, label := range []string{"", "v1", "v3"} {
		if got, _ := clientRead(t, srv, ns, label); got != "greeting: v1\n" {
			t.Fatalf("label %q reads %q", label, got)
		}
	}
	doc, err := d.ReadGray(c, loc, "v2")
	if err != nil || string(doc.Data) != "greeting: v2\n" {
		t.Fatalf("ReadGray v2: %q %v", doc.Data, err)
	}
	if _, err := d.ReadGray(c, loc, "v1"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("ReadGray of another label: %v", err)
	}
	// the stable config changes under the branch: the copy is kept
	if _, err := d.Write(c, loc, []byte("greeting: v1.1\n"), ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := clientRead(t, srv, ns, "v2"); got != "greeting: v2\n" {
		t.Fatalf("after a stable write, label v2 reads %q", got)
	}
	if rb, err := d.ReadBack(c, loc); err != nil || string(rb.Data) != "greeting: v1.1\n" {
		t.Fatalf("ReadBack %q %v", rb.Data, err)
	}
	// the branch moves to another label
	must(t, d.WriteGray(c, loc, "v3", []byte("greeting: v3\n")))
	if got, _ := clientRead(t, srv, ns, "v2"); got != "greeting: v1.1\n" {
		t.Fatalf("label v2 after the branch moved: %q", got)
	}
	if got, _ := clientRead(t, srv, ns, "v3"); got != "greeting: v3\n" {
		t.Fatalf("label v3: %q", got)
	}
	// deleting the copy of a label the branch no longer serves keeps it
	must(t, d.DeleteGray(c, loc, "v2"))
	if _, ok := srv.Branch(docsApp, "default", ns); !ok {
		t.Fatal("DeleteGray of another label removed the branch")
	}
	must(t, d.DeleteGray(c, loc, "v3"))
	if _, ok := srv.Branch(docsApp, "default", ns); ok {
		t.Fatal("branch still there")
	}
	if got, _ := clientRead(t, srv, ns, "v3"); got != "greeting: v1.1\n" {
		t.Fatalf("label v3 after delete: %q", got)
	}
	must(t, d.DeleteGray(c, loc, "v3")) // idempotent
}

func TestDocumentsErrorsNameTheLocation(t *testing.T) {
	testenv.IntegrationTest(t)
	srv, d := docsServer(t)
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := d.Write(c, configsync.Location{AppID: docsApp, Namespace: "missing.yaml"}, []byte("a: 1"), "")
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") || !strings.Contains(err.Error(), "create namespace") {
		t.Fatalf("write to a missing namespace: %v", err)
	}
	_, err = d.Write(c, configsync.Location{AppID: docsApp, Namespace: "application"}, []byte("a: 1"), "")
	if err == nil || !strings.Contains(err.Error(), "properties namespace") {
		t.Fatalf("whole-content write to a properties namespace: %v", err)
	}
	// someone's unpublished edit in the namespace is not published along
	must(t, srv.SetItem(docsApp, "default", "application", "draft", "x"))
	_, err = d.Write(c, configsync.Location{AppID: docsApp, Namespace: "application", Key: "k"}, []byte("v"), "")
	if !errors.Is(err, configsync.ErrConflict) || !strings.Contains(err.Error(), "draft") {
		t.Fatalf("write over a draft: %v", err)
	}
	srv.Stop()
	_, err = d.Read(c, configsync.Location{AppID: docsApp, Namespace: "application", Key: "k"})
	if !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("read with Apollo down: %v", err)
	}
}
