package deployments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/sshdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// ansibleHost is one sshd test host as the role sees it.
type ansibleHost struct {
	host     *sshdtest.Host
	root     string // graylane_root: the host's own install root
	httpAddr string
}

func (h ansibleHost) pid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.root, "var/lib/graylane/graylane.pid"))
	if err != nil {
		t.Fatalf("%s: pid file: %v", h.host.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: pid file %q", h.host.Name, b)
	}
	return pid
}

// ansibleRun runs site.yml over the inventory and returns its output.
func ansibleRun(t *testing.T, inventory string, extra ...string) string {
	t.Helper()
	bin := testenv.LookPath(t, "ansible-playbook")
	dir, err := filepath.Abs("ansible")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-i", inventory, "site.yml"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	local := t.TempDir()
	cmd.Env = append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_LOCAL_TEMP="+local,
		"ANSIBLE_HOME="+local,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("ansible-playbook %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("ansible-playbook %s: %v", strings.Join(extra, " "), time.Since(start).Round(time.Millisecond))
	return out.String()
}

var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// recap returns changed= per host from PLAY RECAP, failing on unreachable
// or failed hosts.
func recap(t *testing.T, out string) map[string]int {
	t.Helper()
	changed := map[string]int{}
	for _, m := range recapLine.FindAllStringSubmatch(out, -1) {
		if m[4] != "0" || m[5] != "0" {
			t.Fatalf("host %s unreachable=%s failed=%s\n%s", m[1], m[4], m[5], out)
		}
		changed[m[1]], _ = strconv.Atoi(m[3])
	}
	return changed
}

// taskResult is one "ok: [host]" line under its TASK or HANDLER header.
type taskResult struct{ task, status, host string }

var resultLine = regexp.MustCompile(`^(ok|changed|skipping|fatal): \[([^\]]+)\]`)

func results(out string) []taskResult {
	var res []taskResult
	task := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "TASK [") || strings.HasPrefix(l, "RUNNING HANDLER [") {
			task = l[strings.Index(l, "[")+1 : strings.Index(l, "]")]
			continue
		}
		if m := resultLine.FindStringSubmatch(l); m != nil {
			res = append(res, taskResult{task: task, status: m[1], host: m[2]})
		}
	}
	return res
}

func indexOf(res []taskResult, taskSuffix, host string) int {
	return slices.IndexFunc(res, func(r taskResult) bool {
		return strings.HasSuffix(r.task, taskSuffix) && r.host == host && r.status != "skipping"
	})
}

// TestAnsibleRoleOnSSHHosts runs deployments/ansible/site.yml with Debian's
// ansible-playbook against two sshd test hosts (testsupport/sshdtest). The
// hosts share this machine's file system, so each gets its own install
// root (graylane_root) and ports. systemd is not the init here, so the
// role's plain path (graylanectl) runs graylane; the systemd path is
// checked by TestAnsibleSystemdPath with systemd-analyze only.
//
//  1. A first run installs the binary, config, env file (an API token) and
//     starts graylane on each host; /readyz answers and the token guards
//     the API.
//  2. A second run reports changed=0 and restarts nothing (same pids).
//  3. A new binary is rolled out host by host: host0 is restarted and
//     answers /readyz before host1's binary is touched.
func TestAnsibleRoleOnSSHHosts(t *testing.T) {
	testenv.IntegrationTest(t)
	c := sshdtest.Start(t, 2)
	bin := filepath.Join(graylanetest.Binaries(t), "graylane")
	token := "ansible-test-token-0123"
	var hosts []ansibleHost
	inv := map[string]any{}
	for _, h := range c.Hosts {
		ah := ansibleHost{host: h, root: filepath.Join(h.Root, "sysroot"), httpAddr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
		hosts = append(hosts, ah)
		ip, port, _ := strings.Cut(h.Addr, ":")
		inv[h.Name] = map[string]any{
			"ansible_host":                 ip,
			"ansible_port":                 port,
			"ansible_user":                 c.User,
			"ansible_ssh_private_key_file": c.KeyFile,
			"ansible_ssh_common_args":      "-o UserKnownHostsFile=" + c.KnownHosts + " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
			"graylane_init":                "plain",
			"graylane_root":                ah.root,
			"graylane_http_addr":           ah.httpAddr,
			"graylane_config": map[string]any{"etcd": map[string]any{"embedded": map[string]any{
				"clientAddr": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
				"peerAddr":   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
			}}},
			"graylane_env": map[string]any{"GRAYLANE_HTTP_TOKEN": token},
		}
	}
	t.Cleanup(func() {
		for _, h := range hosts {
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(h.root, "var/lib/graylane/graylane.log"))
				t.Logf("%s graylane.log:\n%s", h.host.Name, tailLines(string(log), 30))
			}
			out, err := exec.Command(filepath.Join(h.root, "usr/local/bin/graylanectl"), "stop").CombinedOutput()
			t.Logf("%s: graylanectl stop: %v %s", h.host.Name, err, strings.TrimSpace(string(out)))
			graylanetest.KillProxies(h.root) // the proxy outlives graylane by design
		}
	})
	inventory := filepath.Join(t.TempDir(), "inventory.yml")
	b, err := yaml.Marshal(map[string]any{"all": map[string]any{"vars": map[string]any{"graylane_binary_src": bin},
		"children": map[string]any{"graylane": map[string]any{"hosts": inv}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inventory, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// 1. install and start
	out := ansibleRun(t, inventory)
	for _, h := range hosts {
		if n := recap(t, out)[h.host.Name]; n == 0 {
			t.Fatalf("first run changed nothing on %s\n%s", h.host.Name, out)
		}
		checkServing(t, h, token)
	}
	pids := map[string]int{}
	for _, h := range hosts {
		pids[h.host.Name] = h.pid(t)
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[h.host.Name]))
		if err != nil || exe != filepath.Join(h.root, "usr/local/bin/graylane") {
			t.Fatalf("%s runs %s (%v), want the binary under its own root", h.host.Name, exe, err)
		}
	}

	// 2. idempotent
	out = ansibleRun(t, inventory)
	for name, n := range recap(t, out) {
		if n != 0 {
			t.Errorf("second run: %s changed=%d, want 0\n%s", name, n, out)
		}
	}
	for _, h := range hosts {
		if p := h.pid(t); p != pids[h.host.Name] {
			t.Errorf("second run restarted graylane on %s (pid %d -> %d)", h.host.Name, pids[h.host.Name], p)
		}
	}

	// 3. a new binary, host by host
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	newBin := filepath.Join(t.TempDir(), "graylane")
	if err := os.WriteFile(newBin, append(data, []byte("\ngraylane build 2\n")...), 0o755); err != nil {
		t.Fatal(err)
	}
	out = ansibleRun(t, inventory, "-e", "graylane_binary_src="+newBin)
	res := results(out)
	for i, h := range hosts {
		if p := h.pid(t); p == pids[h.host.Name] {
			t.Errorf("%s not restarted on the new binary (pid %d)", h.host.Name, p)
		}
		checkServing(t, h, token)
		if i == 0 {
			continue
		}
		prevReady := indexOf(res, "Wait until graylane answers 200 on /readyz", hosts[i-1].host.Name)
		thisBinary := indexOf(res, "graylane binary (from the controller)", h.host.Name)
		if prevReady < 0 || thisBinary < 0 || prevReady > thisBinary {
			t.Errorf("not host by host: %s ready at step %d, %s's binary replaced at step %d\n%s",
				hosts[i-1].host.Name, prevReady, h.host.Name, thisBinary, out)
		}
	}
}

// checkServing: /readyz answers 200, the API refuses a call without the
// token from graylane.env and accepts it with the token.
func checkServing(t *testing.T, h ansibleHost, token string) {
	t.Helper()
	resp, err := http.Get("http://" + h.httpAddr + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s /readyz: %v %v", h.host.Name, err, resp)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + h.httpAddr + "/api/v1/apps")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s /api/v1/apps without the token: %v %v, want 401", h.host.Name, err, resp)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.httpAddr+"/api/v1/apps", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s /api/v1/apps with the token: %v %v", h.host.Name, err, resp)
	}
	resp.Body.Close()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestAnsibleSystemdPath runs the role's systemd path on this machine
// (ansible_connection local) into a staging root (graylane_root, with
// graylane_systemd_activate false: systemd is not the init here, so nothing
// is reloaded or started), then checks what it wrote with Debian's
// systemd-analyze: the unit verifies cleanly against the installed binary,
// and it is byte for byte deployments/systemd/graylane.service.
func TestAnsibleSystemdPath(t *testing.T) {
	testenv.IntegrationTest(t)
	bin := filepath.Join(graylanetest.Binaries(t), "graylane")
	root := t.TempDir()
	inventory := filepath.Join(t.TempDir(), "inventory.yml")
	b, err := yaml.Marshal(map[string]any{"all": map[string]any{"children": map[string]any{"graylane": map[string]any{"hosts": map[string]any{
		"staging": map[string]any{
			"ansible_connection":        "local",
			"graylane_init":             "systemd",
			"graylane_root":             root,
			"graylane_systemd_activate": false,
			"graylane_create_user":      false,
			"graylane_binary_src":       bin,
			"graylane_env":              map[string]any{"GRAYLANE_HTTP_TOKEN": "a token with spaces"},
		},
	}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inventory, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out := ansibleRun(t, inventory)
	if recap(t, out)["staging"] == 0 {
		t.Fatalf("the systemd path wrote nothing\n%s", out)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/graylane.service"))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile("systemd/graylane.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unit, shipped) {
		t.Errorf("the role's unit differs from deployments/systemd/graylane.service")
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd")).CombinedOutput(); err != nil {
		t.Fatalf("copy system units: %v %s", err, out)
	}
	if err, out := analyze(t, "verify", "--man=no", "--root="+root, filepath.Join(root, "etc/systemd/system/graylane.service")); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify on the role's install: %v\n%s", err, out)
	}
	env, err := os.ReadFile(filepath.Join(root, "etc/graylane/graylane.env"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "GRAYLANE_HTTP_TOKEN='a token with spaces'") {
		t.Errorf("graylane.env:\n%s", env)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/graylane/graylane.env")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("graylane.env mode %v, want 0600", st)
	}
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(root, "etc/graylane/graylane.yaml"))
	if err := yaml.Unmarshal(data, &cfg); err != nil || get(cfg, "data", "dir") != "/var/lib/graylane" {
		t.Errorf("graylane.yaml (systemd: data.dir is the StateDirectory): %v\n%s", err, data)
	}
}

// TestAnsibleInventories: each environment's inventory parses, puts hosts
// in group graylane with that environment's settings, and site.yml passes
// ansible-playbook --syntax-check with it.
func TestAnsibleInventories(t *testing.T) {
	testenv.IntegrationTest(t)
	inv := testenv.LookPath(t, "ansible-inventory")
	for _, env := range []string{"dev", "test", "prod"} {
		cmd := exec.Command(inv, "-i", "inventories/"+env, "--list")
		cmd.Dir = "ansible"
		cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG=ansible.cfg", "ANSIBLE_HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: ansible-inventory: %v", env, err)
		}
		var list struct {
			Meta struct {
				HostVars map[string]map[string]any `json:"hostvars"`
			} `json:"_meta"`
			Graylane struct {
				Hosts []string `json:"hosts"`
			} `json:"graylane"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("%s: %v\n%s", env, err, out)
		}
		if len(list.Graylane.Hosts) == 0 {
			t.Fatalf("%s: no hosts in group graylane:\n%s", env, out)
		}
		for _, h := range list.Graylane.Hosts {
			if got := list.Meta.HostVars[h]["graylane_environment"]; got != env {
				t.Errorf("%s: host %s has graylane_environment %v", env, h, got)
			}
		}
		_ = ansibleRunArgs(t, "-i", "inventories/"+env, "--syntax-check", "site.yml")
	}
}

func ansibleRunArgs(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.LookPath(t, "ansible-playbook"), args...)
	cmd.Dir = "ansible"
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG=ansible.cfg", "ANSIBLE_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ansible-playbook %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
