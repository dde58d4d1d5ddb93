package nginx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/spec"
)

// TestSpecSection checks traffic.nginx's validation and its field paths.
func TestSpecSection(t *testing.T) {
	base := "app: demo\nversion: v1\nbackend: {type: process, process: {command: [demo]}}\ntraffic:\n  type: nginx\n  nginx:\n"
	rel, err := spec.Parse([]byte(base + "    listen: 127.0.0.1:8080\n    serverName: demo.example.com\n    maxFails: 0\n    failTimeout: 500ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := rel.Traffic.Nginx
	if n.EffectiveMaxFails() != 0 || n.EffectiveFailTimeout() != 500*time.Millisecond || n.EffectiveConnectTimeout() != 2*time.Second {
		t.Fatalf("effective values: %d %v %v", n.EffectiveMaxFails(), n.EffectiveFailTimeout(), n.EffectiveConnectTimeout())
	}
	cases := []struct{ doc, field, msg string }{
		{base + "    listen: \"8080\"\n", "traffic.nginx.listen", "not host:port"},
		{base + "    listen: \"127.0.0.1:0\"\n", "traffic.nginx.listen", "no valid port"},
		{base + "    listen: \"bad;host:80\"\n", "traffic.nginx.listen", "not an IP address or host name"},
		{base + "    serverName: \"a b\"\n", "traffic.nginx.serverName", "not a server name"},
		{base + "    maxFails: -1\n", "traffic.nginx.maxFails", "outside 0..100"},
		{base + "    failTimeout: 0s\n", "traffic.nginx.failTimeout", "at least 1ms"},
		{base + "    connectTimeout: 1500us\n", "traffic.nginx.connectTimeout", "1ms resolution"},
		{base + "    upstream: x\n", "traffic.nginx.upstream", "unknown field"},
	}
	for _, tc := range cases {
		_, err := spec.Parse([]byte(tc.doc))
		if got := spec.FieldOf(err); got != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q:\n got field %q, err %v\nwant field %q containing %q", tc.doc, got, err, tc.field, tc.msg)
		}
	}
}
