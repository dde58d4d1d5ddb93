package spec

import (
	"strings"
	"testing"
	"time"
)

// backend.docker's validation and its field paths.
func TestDockerSection(t *testing.T) {
	head := "app: shop\nversion: v1\nbackend:\n  type: docker\n  docker:\n"
	body := "    image: \"registry.example.com/shop:{{.Version}}\"\n    port: 8080\n"
	full := head + body + `    pull: always
    command: ["--listen=:{{.Port}}", "--id={{.InstanceID}}"]
    env: {APP_VERSION: "{{.Version}}"}
    network: shopnet
    volumes: ["/srv/shop/data:/data:ro", "cache:/cache"]
    labels: {team: payments}
    resources: {cpus: 0.5, memory: 256Mi}
    healthcheck: image
    stopGracePeriod: 5s
    order: stop-first
    hosts:
      - unix:///var/run/docker.sock
      - {url: "tcp://10.0.0.5:2376", tlsDir: /etc/graylane/docker/a, name: a}
      - ssh://deploy@10.0.0.6
`
	rel, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	d := rel.Backend.Docker
	if d.EffectivePull() != "always" || d.EffectiveOrder() != "stop-first" || d.EffectiveStopGracePeriod() != 5*time.Second ||
		d.Resources.CPUs.NanoCPUs() != 5e8 || len(d.Hosts) != 3 || d.Hosts[1].TLSDir != "/etc/graylane/docker/a" {
		t.Fatalf("parsed section is wrong: %+v", d)
	}
	if h := d.Hosts[0]; h.HostName() != "local" || !h.Local() || h.EffectivePublishIP() != "127.0.0.1" || h.EffectiveAddress() != "127.0.0.1" {
		t.Fatalf("unix host defaults are wrong: %+v", h)
	}
	if h := d.Hosts[2]; h.HostName() != "10.0.0.6" || h.Local() || h.EffectivePublishIP() != "0.0.0.0" || h.EffectiveAddress() != "10.0.0.6" {
		t.Fatalf("ssh host defaults are wrong: %+v", h)
	}
	// a clone (used to record the release in force) keeps every field
	if c := rel.Clone(); c.Hash() != rel.Hash() || c.Backend.Docker.Resources.CPUs.Value != 0.5 || c.Backend.Docker.Hosts[1].Name != "a" {
		t.Fatalf("clone differs: %+v", c.Backend.Docker)
	}
	min, err := Parse([]byte(head + body))
	if err != nil {
		t.Fatal(err)
	}
	if d := min.Backend.Docker; d.EffectivePull() != "missing" || d.EffectiveOrder() != "start-first" || d.EffectiveNetwork() != "bridge" || d.EffectiveStopGracePeriod() != 10*time.Second {
		t.Fatalf("defaults are wrong: %+v", d)
	}
	hostNet := head + "    image: demo:v1\n    network: host\n    command: [\"--addr=127.0.0.1:{{.Port}}\"]\n"
	if _, err := Parse([]byte(hostNet)); err != nil {
		t.Fatalf("network host with {{.Port}} and no port: %v", err)
	}
	compose := head + "    compose: {file: deploy/docker-compose.yml, service: web}\n"
	if _, err := Parse([]byte(compose)); err != nil {
		t.Fatalf("compose without image or port: %v", err)
	}

	cases := []struct{ doc, field, msg string }{
		{head + "    port: 8080\n", "backend.docker.image", "is required"},
		{head + strings.Replace(body, "registry.example.com/shop", "Registry/Shop", 1), "backend.docker.image", "not an image reference"},
		{head + strings.Replace(body, "{{.Version}}", "{{.Port}}", 1), "backend.docker.image", "Port"},
		{head + strings.Replace(body, "shop:{{.Version}}", "shop:{{.Version}} ; rm -rf /", 1), "backend.docker.image", "white space"},
		{"app: shop\nversion: 1.0+build\nbackend:\n  type: docker\n  docker:\n" + body, "backend.docker.image", "with version 1.0+build"},
		{head + body + "    pull: sometimes\n", "backend.docker.pull", "not never, missing or always"},
		{head + body + "    healthcheck: docker\n", "backend.docker.healthcheck", "not graylane or image"},
		{head + body + "    order: random\n", "backend.docker.order", "not start-first or stop-first"},
		{head + body + "    command: [ok, \"{{.Nope}}\"]\n", "backend.docker.command[1]", "Nope"},
		{head + body + "    entrypoint: [\"{{.Bad\"]\n", "backend.docker.entrypoint[0]", "unclosed"},
		{head + body + "    env: {\"BAD-NAME\": x}\n", "backend.docker.env.BAD-NAME", "not an environment variable name"},
		{head + body + "    env: {GOOD: \"{{.Addr}}\"}\n", "backend.docker.env.GOOD", "Addr"},
		{head + "    image: demo:v1\n", "backend.docker.port", "is required"},
		{head + "    image: demo:v1\n    network: host\n", "backend.docker.port", "{{.Port}}"},
		{head + body + "    port: 70000\n", "backend.docker.port", "outside 1..65535"},
		{head + body + "    network: none\n", "backend.docker.network", "unreachable"},
		{head + body + "    network: \"my net\"\n", "backend.docker.network", "not bridge, host or a network name"},
		{head + body + "    volumes: [/data]\n", "backend.docker.volumes[0]", "source:target"},
		{head + body + "    volumes: [\"/srv/../etc:/data\"]\n", "backend.docker.volumes[0]", "clean absolute path"},
		{head + body + "    volumes: [\"/srv:data\"]\n", "backend.docker.volumes[0]", "target"},
		{head + body + "    volumes: [\"/srv:/data:rx\"]\n", "backend.docker.volumes[0]", "not ro or rw"},
		{head + body + "    volumes: [\"$(x):/data\"]\n", "backend.docker.volumes[0]", "neither an absolute path nor a volume name"},
		{head + body + "    labels: {graylane.io/app: x}\n", "backend.docker.labels.graylane.io/app", "reserved"},
		{head + body + "    labels: {com.docker.compose.project: x}\n", "backend.docker.labels.com.docker.compose.project", "reserved"},
		{head + body + "    labels: {\"a b\": x}\n", "backend.docker.labels.a b", "not a label key"},
		{head + body + "    resources: {memory: lots}\n", "backend.docker.resources.memory", "not a memory size"},
		{head + body + "    resources: {memory: 1k}\n", "backend.docker.resources.memory", "6MiB minimum"},
		{head + body + "    resources: {cpus: \"-1\"}\n", "backend.docker.resources.cpus", "outside (0, 1024]"},
		{head + body + "    resources: {cpus: half}\n", "backend.docker.resources.cpus", "not a number of CPUs"},
		{head + body + "    stopGracePeriod: -1s\n", "backend.docker.stopGracePeriod", "negative"},
		{head + body + "    hosts: [\"http://x:1\"]\n", "backend.docker.hosts[0]", "scheme must be unix, tcp or ssh"},
		{head + body + "    hosts: [\"tcp://10.0.0.1\"]\n", "backend.docker.hosts[0]", "tcp://host:port"},
		{head + body + "    hosts: [\"unix://relative.sock\"]\n", "backend.docker.hosts[0]", "unix:///absolute/path"},
		{head + body + "    hosts: [\"ssh://deploy:pw@h1\"]\n", "backend.docker.hosts[0]", "password"},
		{head + body + "    hosts: [\"ssh://Bad$User@h1\"]\n", "backend.docker.hosts[0]", "not a user name"},
		{head + body + "    hosts: [\"tcp://h1:2376\", \"tcp://h1:2376\"]\n", "backend.docker.hosts[1]", "duplicates hosts[0]"},
		{head + body + "    hosts: [\"tcp://h1:2375\", \"tcp://h1:2376\"]\n", "backend.docker.hosts[1].name", "duplicates the name"},
		{head + body + "    hosts: [{url: \"unix:///x.sock\", tlsDir: /certs}]\n", "backend.docker.hosts[0].tlsDir", "tcp:// engines only"},
		{head + body + "    hosts: [{url: \"tcp://h:1\", publishIP: everywhere}]\n", "backend.docker.hosts[0].publishIP", "not an IP"},
		{head + body + "    hosts: [{url: \"tcp://h:1\", password: x}]\n", "backend.docker.hosts[0]", "unknown field"},
		{head + body + "    hosts: [7]\n", "backend.docker.hosts[0]", "want string or mapping"},
		{head + "    compose: {file: x.yml}\n", "backend.docker.compose.service", "is required"},
		{head + "    compose: {service: web}\n", "backend.docker.compose.file", "is required"},
		{head + "    compose: {file: x.yml, service: web, project: Shop}\n", "backend.docker.compose.project", "not a compose project name"},
		{head + body + "    privileged: true\n", "backend.docker.privileged", "unknown field"},
		{"app: shop\nversion: v1\nbackend:\n  type: docker\n", "backend.docker", "is required when type is docker"},
		{"app: shop\nversion: v1\nbackend:\n  type: process\n  process: {command: [x]}\n  docker: {image: x, port: 1}\n", "backend.docker", "is set but backend.type is \"process\""},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.doc))
		if err == nil {
			t.Errorf("%q: parsed, want an error at %s", tc.doc, tc.field)
			continue
		}
		if got := FieldOf(err); got != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q:\n got field %q, err %v\nwant field %q containing %q", tc.doc, got, err, tc.field, tc.msg)
		}
	}
}

func TestParseDockerMemory(t *testing.T) {
	for in, want := range map[string]int64{"256Mi": 256 << 20, "512m": 512 << 20, "1Gi": 1 << 30, "1G": 1e9, "268435456": 268435456, "10MB": 10e6} {
		got, err := ParseDockerMemory(in)
		if err != nil || got != want {
			t.Errorf("ParseDockerMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1Mi", "1.5Gi", "1 Gi", "99999999999999999999Gi"} {
		if _, err := ParseDockerMemory(in); err == nil {
			t.Errorf("ParseDockerMemory(%q) succeeded", in)
		}
	}
}
