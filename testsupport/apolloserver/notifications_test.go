package apolloserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

func TestNotificationsBadRequests(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 100 * time.Millisecond})
	must(t, s.CreateApp("app", ""))
	base := s.URL() + "notifications/v2?appId=app&cluster=default"

	// A missing required parameter is not special-cased by Apollo's
	// GlobalDefaultExceptionHandler: it lands in the Throwable handler (500).
	e := expectError(t, get(t, base), 500, "500", "")
	if e.Exception != exMissingParam || !strings.Contains(e.Message, "'notifications'") {
		t.Errorf("missing: %+v", e)
	}
	for _, bad := range []string{"", "garbage", "[]", "null", `[{"namespaceName":""}]`, `{"namespaceName":"application"}`} {
		e := expectError(t, get(t, base+"&notifications="+url.QueryEscape(bad)), 400, "400", "invalid notifications format:"+bad)
		if e.Exception != exBadRequest {
			t.Errorf("%q: exception %s", bad, e.Exception)
		}
	}
	if r := do(t, "POST", notificationsURL(s, "app", "default", "application", -1), nil, nil); r.status != 400 {
		t.Errorf("POST: %d", r.status)
	}
}

func TestNotificationsAnswerAtOnceWithGlobalIDs(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 200 * time.Millisecond})
	must(t, s.CreateApp("app1", ""))
	must(t, s.CreateApp("app2", ""))
	other, err := s.CreateNamespace("app1", "other", FormatProperties)
	must(t, err)

	publish(t, s, "app1", "default", "application", "a", "k", "1")
	id1 := s.NotificationID("app1", "default", "application")
	publish(t, s, "app2", "default", "application", "b", "k", "1")
	id2 := s.NotificationID("app2", "default", "application")
	publish(t, s, "app1", "default", "application", "c", "k", "2")
	id3 := s.NotificationID("app1", "default", "application")
	if !(id1 < id2 && id2 < id3 && id3-id1 > 1) {
		t.Fatalf("ids %d %d %d: want one global, strictly increasing counter", id1, id2, id3)
	}

	st, n := poll(t, s, "app1", "default", "application", -1, other, -1)
	if st != 200 || len(n) != 1 || n[0].NamespaceName != "application" || n[0].NotificationID != id3 ||
		len(n[0].Messages.Details) != 1 || n[0].Messages.Details["app1+default+application"] != id3 {
		t.Fatalf("answer: %d %+v", st, n)
	}
	// Up to date: held, then 304.
	begin := time.Now()
	r := get(t, notificationsURL(s, "app1", "default", "application", id3))
	if r.status != http.StatusNotModified || len(r.body) != 0 || time.Since(begin) < 150*time.Millisecond {
		t.Fatalf("up to date: %d %q after %v", r.status, r.body, time.Since(begin))
	}
	// -1 only answers when something was released for a watched key: Apollo
	// compares against the latest release message, which "other" never had.
	if st, _ := poll(t, s, "app1", "default", other, -1); st != http.StatusNotModified {
		t.Fatalf("-1 on a never-released namespace: %d, want 304 after the hold", st)
	}
	// application.properties is application: Apollo strips the suffix before
	// it records the name, so the reply says "application"
	// (NotificationControllerV2IntegrationTest.testPollNotificationWithDefaultNamespaceAsFile).
	if st, n := poll(t, s, "app1", "default", "application.properties", -1); st != 200 || n[0].NamespaceName != "application" {
		t.Fatalf(".properties: %d %+v", st, n)
	}
	// A case difference is answered with the client's spelling.
	if st, n := poll(t, s, "app1", "default", "APPLICATION", -1); st != 200 || n[0].NamespaceName != "APPLICATION" {
		t.Fatalf("case: %d %+v", st, n)
	}
	// A non-default cluster also watches default (and the data centre).
	if st, n := poll(t, s, "app1", "blue", "application", -1); st != 200 || n[0].Messages.Details["app1+default+application"] != id3 {
		t.Fatalf("cluster fallback key: %d %+v", st, n)
	}
}

func TestNotificationsSameNamespaceTwiceInDifferentCase(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 100 * time.Millisecond})
	must(t, s.CreateApp("app", ""))
	ns, err := s.CreateNamespace("app", "FX.apollo", FormatProperties)
	must(t, err)
	for _, v := range []string{"1", "2", "3"} {
		publish(t, s, "app", "default", ns, "r", "k", v)
	}
	id := s.NotificationID("app", "default", ns)
	if id <= 1 {
		t.Fatalf("id %d", id)
	}

	// Apollo keeps the entry with the smaller id, and answers with that
	// entry's spelling only if it differs from the stored name.
	cases := []struct {
		pairs []any
		want  string
	}{
		{[]any{"FX.apollo", id, "fx.apollo", 1}, "fx.apollo"},
		{[]any{"fx.apollo", 1, "FX.apollo", id}, "fx.apollo"},
		{[]any{"FX.apollo", 1, "fx.apollo", id}, "FX.apollo"},
		{[]any{"fx.apollo", id, "FX.apollo", 1}, "FX.apollo"},
	}
	for _, c := range cases {
		st, n := poll(t, s, "app", "default", c.pairs...)
		if st != 200 || len(n) != 1 || n[0].NamespaceName != c.want || n[0].NotificationID != id {
			t.Errorf("%v: %d %+v, want %s", c.pairs, st, n, c.want)
		}
	}
}

func TestLongPollIsWokenByARelease(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 30 * time.Second})
	must(t, s.CreateApp("app", ""))
	_, err := s.CreateNamespace("app", "db", FormatProperties)
	must(t, err)
	publish(t, s, "app", "default", "application", "r1", "k", "1")
	publish(t, s, "app", "default", "db", "r1", "k", "1")
	appID := s.NotificationID("app", "default", "application")
	dbID := s.NotificationID("app", "default", "db")

	ch := asyncPoll(s, "app", "default", "application", appID, "DB", dbID)
	waitHeld(t, s, 1)
	publish(t, s, "app", "default", "db", "r2", "k", "2")
	res := recv(t, ch, 5*time.Second)
	newID := s.NotificationID("app", "default", "db")
	if res.err != nil || res.status != 200 || len(res.n) != 1 || res.n[0].NamespaceName != "DB" ||
		res.n[0].NotificationID != newID || len(res.n[0].Messages.Details) != 1 || res.n[0].Messages.Details["app+default+db"] != newID {
		t.Fatalf("woken poll: %+v %s", res, res.body)
	}
	if newID <= dbID {
		t.Fatalf("id did not grow: %d -> %d", dbID, newID)
	}
}

// WaitingPolls counts only polls held with nothing newer for them: a poll
// answered at once never counts, a held one does, and a release that wakes
// it takes it out of the count before its answer is even read.
func TestWaitingPollsCountsUpToDateClients(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 30 * time.Second})
	must(t, s.CreateApp("app", ""))
	publish(t, s, "app", "default", "application", "r1", "k", "1")
	id := s.NotificationID("app", "default", "application")
	if st, _ := poll(t, s, "app", "default", "application", id-1); st != 200 || s.WaitingPolls() != 0 {
		t.Fatalf("a stale poll: status %d, %d waiting; want 200 and none waiting", st, s.WaitingPolls())
	}
	upToDate := asyncPoll(s, "app", "default", "application", id)
	other := asyncPoll(s, "app", "default", "application", id)
	waitHeld(t, s, 2)
	publish(t, s, "app", "default", "application", "r2", "k", "2")
	if n := s.WaitingPolls(); n != 0 {
		t.Fatalf("%d waiting right after the release that woke them, want 0", n)
	}
	for _, ch := range []<-chan pollResult{upToDate, other} {
		if res := recv(t, ch, 5*time.Second); res.status != 200 {
			t.Fatalf("woken poll: %+v", res)
		}
	}
}

func TestCloseReleasesHeldPollsAtOnce(t *testing.T) {
	testenv.IntegrationTest(t)
	s := New(Options{LongPollTimeout: 10 * time.Minute})
	must(t, s.Start())
	must(t, s.CreateApp("app", ""))
	ch := asyncPoll(s, "app", "default", "application", -1)
	waitHeld(t, s, 1)
	begin := time.Now()
	s.Close()
	res := recv(t, ch, 5*time.Second)
	if time.Since(begin) > 3*time.Second {
		t.Fatalf("Close took %v", time.Since(begin))
	}
	if res.err == nil && res.status == 200 {
		t.Fatalf("a released hold must not look like a change: %+v", res)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start after Close must fail")
	}
}

func TestStopAndStartKeepStateAndPorts(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 10 * time.Minute})
	must(t, s.CreateApp("app", ""))
	rel := publish(t, s, "app", "default", "application", "r", "k", "v")
	cfgURL, portalURL := s.URL(), s.PortalURL()

	ch := asyncPoll(s, "app", "default", "application", s.NotificationID("app", "default", "application"))
	waitHeld(t, s, 1)
	s.Stop()
	if s.Running() {
		t.Fatal("still running")
	}
	if res := recv(t, ch, 5*time.Second); res.err == nil && res.status == 200 {
		t.Fatalf("held poll across Stop: %+v", res)
	}
	if _, err := httpClient.Get(cfgURL + "configs/app/default/application"); err == nil {
		t.Fatal("config service still answers while stopped")
	}

	// Changes made while Apollo is down are served once it is back.
	publish(t, s, "app", "default", "application", "r2", "k", "v2")
	must(t, s.Start())
	if s.URL() != cfgURL || s.PortalURL() != portalURL {
		t.Fatalf("addresses changed: %s %s -> %s %s", cfgURL, portalURL, s.URL(), s.PortalURL())
	}
	st, c := getConfig(t, s, "app", "default", "application", url.Values{"releaseKey": {rel.ReleaseKey}})
	if st != 200 || c.Configurations["k"] != "v2" {
		t.Fatalf("after restart: %d %+v", st, c)
	}
	if err := s.Start(); err == nil {
		t.Fatal("double Start must fail")
	}
}
