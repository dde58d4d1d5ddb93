package webhook_test

import (
	"strings"
	"testing"

	"github.com/graylane/graylane/spec"
)

// TestSpecSection checks backend.webhook's validation and its field paths.
func TestSpecSection(t *testing.T) {
	base := "app: demo\nversion: v1\nbackend:\n  type: webhook\n  webhook:\n"
	ok := base + "    url: https://deploy.example/hooks/graylane\n    statusURL: \"https://deploy.example/apps/{{.App}}\"\n"
	rel, err := spec.Parse([]byte(ok + "    secretEnv: DEPLOY_SECRET\n    timeout: 5s\n    retries: 0\n    headers: {X-Team: payments}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := rel.Backend.Webhook
	if w.EffectiveTimeout().String() != "5s" || w.EffectiveRetries() != 0 {
		t.Fatalf("timeout %v, retries %d", w.EffectiveTimeout(), w.EffectiveRetries())
	}
	if u, _ := w.RenderStatusURL("demo"); u != "https://deploy.example/apps/demo" {
		t.Fatalf("status URL %q", u)
	}
	cases := []struct{ doc, field, msg string }{
		{base + "    statusURL: https://x/s\n", "backend.webhook.url", "is required"},
		{base + "    url: ftp://x/d\n    statusURL: https://x/s\n", "backend.webhook.url", "http or https"},
		{base + "    url: https://user:pw@x/d\n    statusURL: https://x/s\n", "backend.webhook.url", "credentials"},
		{base + "    url: https://x/d\n", "backend.webhook.statusURL", "is required"},
		{base + "    url: https://x/d\n    statusURL: \"https://x/{{.Nope}}\"\n", "backend.webhook.statusURL", "Nope"},
		{ok + "    secretEnv: \"1BAD-NAME\"\n", "backend.webhook.secretEnv", "not an environment variable name"},
		{ok + "    headers: {X-Graylane-Signature: forged}\n", "backend.webhook.headers.X-Graylane-Signature", "cannot be overridden"},
		{ok + "    headers: {\"Bad Header\": x}\n", "backend.webhook.headers.Bad Header", "not a header name"},
		{ok + "    timeout: 0s\n", "backend.webhook.timeout", "must be positive"},
		{ok + "    retries: 11\n", "backend.webhook.retries", "outside 0..10"},
		{ok + "    token: abc\n", "backend.webhook.token", "unknown field"},
	}
	for _, tc := range cases {
		_, err := spec.Parse([]byte(tc.doc))
		if got := spec.FieldOf(err); got != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q:\n got field %q, err %v\nwant field %q containing %q", tc.doc, got, err, tc.field, tc.msg)
		}
	}
}
