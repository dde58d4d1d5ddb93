package ssh_test

import (
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/spec"
)

// TestSpecSection checks backend.ssh's validation and its field paths.
func TestSpecSection(t *testing.T) {
	head := "app: demo\nversion: v1\nbackend:\n  type: ssh\n  ssh:\n"
	body := "    user: deploy\n    root: /srv/demo\n    appPort: 8080\n    artifact: \"/srv/artifacts/{{.App}}/{{.Version}}.tgz\"\n    restart: [sudo, systemctl, restart, demo]\n"
	hosts := "    hosts:\n      - {address: 10.0.0.1, tags: [canary]}\n      - {address: \"10.0.0.2:2222\", name: web2, root: /opt/demo}\n"
	rel, err := spec.Parse([]byte(head + body + hosts))
	if err != nil {
		t.Fatal(err)
	}
	s := rel.Backend.SSH
	h0, h1 := s.Hosts[0], s.Hosts[1]
	if s.SSHAddr(h0) != "10.0.0.1:22" || s.SSHAddr(h1) != "10.0.0.2:2222" || s.HostAppAddr(h1) != "10.0.0.2:8080" ||
		s.HostRoot(h1) != "/opt/demo" || h1.HostName() != "web2" || h0.HostName() != "10.0.0.1" || !s.IsCanary(h0) || s.IsCanary(h1) {
		t.Fatal("derived host values are wrong")
	}
	if s.EffectiveKeepReleases() != 20 || s.EffectiveCommandTimeout() != time.Minute || s.EffectiveHealthTimeout() != time.Minute {
		t.Fatal("defaults are wrong")
	}
	cases := []struct{ doc, field, msg string }{
		{head + strings.Replace(body, "    user: deploy\n", "", 1) + hosts, "backend.ssh.user", "is required"},
		{head + strings.Replace(body, "deploy", "Deploy$", 1) + hosts, "backend.ssh.user", "not a user name"},
		{head + strings.Replace(body, "/srv/demo\n", "srv/demo\n", 1) + hosts, "backend.ssh.root", "absolute"},
		{head + strings.Replace(body, "/srv/demo\n", "\"/srv/de mo\"\n", 1) + hosts, "backend.ssh.root", "may contain only"},
		{head + strings.Replace(body, "/srv/demo\n", "/srv/../etc\n", 1) + hosts, "backend.ssh.root", "not clean"},
		{head + strings.Replace(body, "    restart: [sudo, systemctl, restart, demo]\n", "", 1) + hosts, "backend.ssh.restart", "is required"},
		{head + strings.Replace(body, "[sudo, systemctl, restart, demo]", "[x, \"{{.Nope}}\"]", 1) + hosts, "backend.ssh.restart[1]", "Nope"},
		{head + body, "backend.ssh.hosts", "at least one host"},
		{head + body + "    hosts:\n      - {address: 10.0.0.1}\n      - {address: \"10.0.0.1;rm\"}\n", "backend.ssh.hosts[1].address", "not an IP address or host name"},
		{head + body + "    hosts:\n      - {address: 10.0.0.1}\n      - {address: \"10.0.0.1:22\"}\n", "backend.ssh.hosts[1].address", "duplicates hosts[0]"},
		{head + body + "    hosts:\n      - {address: \"10.0.0.1:99999\"}\n", "backend.ssh.hosts[0].address", "no valid port"},
		{head + body + "    hosts:\n      - {address: 10.0.0.1, tags: [\"can ary\"]}\n", "backend.ssh.hosts[0].tags[0]", "not a tag"},
		{head + strings.Replace(body, "    appPort: 8080\n", "", 1) + "    hosts:\n      - {address: 10.0.0.1}\n", "backend.ssh.hosts[0].appAddr", "required when backend.ssh.appPort"},
		{head + strings.Replace(body, "    root: /srv/demo\n", "", 1) + "    hosts:\n      - {address: 10.0.0.1}\n", "backend.ssh.hosts[0].root", "required when backend.ssh.root"},
		{head + body + "    keepReleases: 1\n" + hosts, "backend.ssh.keepReleases", "outside 2..1000"},
		{head + body + "    linkedFiles: [../etc/passwd]\n" + hosts, "backend.ssh.linkedFiles[0]", "clean path"},
		{head + body + "    hooks: {before: [\"{{.Bad\"]}\n" + hosts, "backend.ssh.hooks.before[0]", "template"},
		{head + body + "    commandTimeout: 0s\n" + hosts, "backend.ssh.commandTimeout", "must be positive"},
		{head + body + "    password: hunter2\n" + hosts, "backend.ssh.password", "unknown field"},
	}
	for _, tc := range cases {
		_, err := spec.Parse([]byte(tc.doc))
		if got := spec.FieldOf(err); got != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q:\n got field %q, err %v\nwant field %q containing %q", tc.doc, got, err, tc.field, tc.msg)
		}
	}
}
