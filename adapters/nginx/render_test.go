package nginx

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func inst(id, version, addr string, ready bool) adapters.Instance {
	return adapters.Instance{ID: id, Version: version, Addr: addr, Ready: ready}
}

func split(preview string, vw ...any) traffic.Split {
	s := traffic.Split{Preview: preview}
	for i := 0; i < len(vw); i += 2 {
		s.Weights = append(s.Weights, traffic.VersionWeight{Version: vw[i].(string), Weight: vw[i+1].(int)})
	}
	return s
}

func TestRenderGolden(t *testing.T) {
	two := []adapters.Instance{
		inst("demo-v1-0", "v1", "127.0.0.1:3001", true),
		inst("demo-v1-1", "v1", "127.0.0.1:3002", true),
		inst("demo-v2-0", "v2", "127.0.0.1:4001", true),
		inst("demo-v2-1", "v2", "127.0.0.1:4002", false), // not ready: left out
	}
	maxFails := 3
	cases := []struct {
		name string
		in   Input
	}{
		{"stable", Input{App: "demo", Split: split("", "v1", 100), Instances: two[:2], StatusAddr: "127.0.0.1:18081"}},
		{"canary", Input{App: "demo", Split: split("v2", "v2", 10, "v1", 90), Instances: two, StatusAddr: "127.0.0.1:18081",
			Traffic: &spec.Traffic{Type: "nginx", StickyHeader: "X-User-Id", StickyCookie: "uid",
				Nginx: &spec.NginxTraffic{Listen: "127.0.0.1:8080", ServerName: "demo.example.com", MaxFails: &maxFails, FailTimeout: spec.D(1500e6)}}}},
		{"canary-without-ready-instances", Input{App: "my-app", Split: split("", "v2.0.0+build.7", 25, "v1", 75), Instances: two[:2]}},
		{"no-instances", Input{App: "demo", Split: split("", "v1", 100)}},
		{"only-an-unrouted-version-ready", Input{App: "demo", Split: split("", "v1", 100), Instances: two[2:]}},
		{"empty-split-with-preview", Input{App: "demo", Split: split("v2"), Instances: two}},
		{"trusted-callers-and-salt", Input{App: "my-app", Split: split("v2", "v3", 5, "v2", 15, "v1", 80), Instances: two, StatusAddr: "127.0.0.1:18081",
			Salt: "shop-2025", TrustSecret: "0123456789abcdef-secret",
			Traffic: &spec.Traffic{Type: "nginx", Trust: &spec.TrafficTrust{ClientIPs: []string{"10.8.0.0/16", "::1"}, Header: "X-Graylane-Key", SecretEnv: "K"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, digest := out.Conf, out.Digest
			if !strings.Contains(string(got), "# graylane-digest: "+digest+"\n") {
				t.Errorf("digest %s not in the header", digest)
			}
			if tc.in.StatusAddr != "" && !strings.Contains(string(got), `return 200 "`+digest+`\n";`) {
				t.Errorf("status server does not answer digest %s", digest)
			}
			s, d, err := ParseHeader(got)
			if err != nil || d != digest || !s.Equal(tc.in.Split) {
				t.Errorf("ParseHeader = %+v, %q, %v; want %+v, %q", s, d, err, tc.in.Split, digest)
			}
			again, _ := Render(tc.in)
			if string(again.Conf) != string(got) || string(again.Location) != string(out.Location) {
				t.Error("Render is not deterministic")
			}
			// both files are golden: the .conf (http block) and the
			// .location snippet with the Lua decision
			for ext, content := range map[string][]byte{".conf": got, ".location": out.Location} {
				golden := filepath.Join("testdata", tc.name+ext+".golden")
				if *update {
					if err := os.WriteFile(golden, content, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./adapters/nginx -run TestRenderGolden -update)", err)
				}
				if string(content) != string(want) {
					t.Errorf("render differs from %s (rerun with -update if intended):\n%s", golden, content)
				}
			}
		})
	}
}

func TestRenderRejects(t *testing.T) {
	ok := []adapters.Instance{inst("a", "v1", "127.0.0.1:1", true)}
	cases := []struct {
		name        string
		in          Input
		want        string
		unsupported bool
	}{
		{"weights not summing to 100", Input{App: "demo", Split: split("", "v1", 60), Instances: ok}, "sum to 100", false},
		{"config injection through an address", Input{App: "demo", Split: split("", "v1", 100),
			Instances: []adapters.Instance{inst("a", "v1", "127.0.0.1:1; } server { listen 80", true)}}, "no valid port", false},
		{"address with a bad host", Input{App: "demo", Split: split("", "v1", 100),
			Instances: []adapters.Instance{inst("a", "v1", "a;b:80", true)}}, "not an IP address or host name", false},
		{"cookie nginx cannot name", Input{App: "demo", Split: split("", "v1", 100), Instances: ok,
			Traffic: &spec.Traffic{StickyCookie: "my-cookie"}}, "sticky cookie", true},
		{"header nginx cannot name", Input{App: "demo", Split: split("", "v1", 100), Instances: ok,
			Traffic: &spec.Traffic{StickyHeader: "X.User"}}, "sticky header", true},
		{"bad version", Input{App: "demo", Split: split("", "v1$x", 100), Instances: ok}, "split version", false},
		{"bad app", Input{App: "Demo", Split: split("", "v1", 100), Instances: ok}, "app", false},
		{"bad salt", Input{App: "demo", Split: split("", "v1", 100), Instances: ok, Salt: "a b"}, "not a salt", false},
		{"short trust secret", Input{App: "demo", Split: split("", "v1", 100), Instances: ok, TrustSecret: "short",
			Traffic: &spec.Traffic{Trust: &spec.TrafficTrust{Header: "X-Key", SecretEnv: "K"}}}, "trust secret", true},
		{"trust secret that could inject", Input{App: "demo", Split: split("", "v1", 100), Instances: ok, TrustSecret: `0123456789abcdef" 1; default 1;`,
			Traffic: &spec.Traffic{Trust: &spec.TrafficTrust{Header: "X-Key", SecretEnv: "K"}}}, "trust secret", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if got := errors.Is(err, adapters.ErrUnsupported); got != tc.unsupported {
				t.Fatalf("errors.Is(err, ErrUnsupported) = %v, want %v", got, tc.unsupported)
			}
		})
	}
}

func TestNginxMessage(t *testing.T) {
	out := "2026/11/21 22:39:50 [emerg] 4908#4908: host not found in upstream \"x.invalid:80\" in /p/demo.conf:8\n" +
		"nginx: configuration file /p/nginx.conf test failed\n"
	got := nginxMessage([]byte(out), errors.New("exit status 1"))
	want := `[emerg] host not found in upstream "x.invalid:80" in /p/demo.conf:8`
	if got != want {
		t.Fatalf("nginxMessage = %q, want %q", got, want)
	}
}
