package deployments

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// systemRoot builds a file-system root for systemd-analyze --root: the
// host's system units (so targets such as sysinit.target resolve), the real
// graylane binary where the unit expects it, and the unit itself. It
// returns the root and the unit's path inside it.
func systemRoot(t *testing.T, unit []byte) (string, string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/local/bin", "etc/systemd/system", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd")).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "copy the host's systemd units: %v %s", err, out)
	}
	bin := graylanetest.Binaries(t)
	data, err := os.ReadFile(filepath.Join(bin, "graylane"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/local/bin/graylane"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "etc/systemd/system/graylane.service")
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, path
}

// analyze runs systemd-analyze and returns its exit error and its output.
func analyze(t *testing.T, args ...string) (error, string) {
	t.Helper()
	bin := testenv.LookPath(t, "systemd-analyze")
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return err, strings.TrimSpace(out.String())
}

// TestSystemdUnitVerifies runs Debian's `systemd-analyze verify` on
// deployments/systemd/graylane.service: it must exit 0 and print nothing
// (systemd reports unknown or malformed settings as warnings with exit 0, so
// silence is the real check). A broken copy of the unit must be caught,
// which shows the check can fail.
func TestSystemdUnitVerifies(t *testing.T) {
	testenv.IntegrationTest(t)
	unit, err := os.ReadFile("systemd/graylane.service")
	if err != nil {
		t.Fatal(err)
	}
	root, path := systemRoot(t, unit)
	if err, out := analyze(t, "verify", "--man=no", "--root="+root, path); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify graylane.service: %v\n%s", err, out)
	}

	broken := strings.Replace(string(unit), "\nProtectSystem=strict\n", "\nProtectSystem=stricter\n", 1)
	root, path = systemRoot(t, []byte(broken))
	if _, out := analyze(t, "verify", "--man=no", "--root="+root, path); !strings.Contains(out, "ProtectSystem") && !strings.Contains(out, "protect system") {
		t.Fatalf("systemd-analyze verify did not report a bad ProtectSystem value; output:\n%s", out)
	}
}

// TestSystemdUnitHardened checks the unit's hardening with
// `systemd-analyze security --offline`: the overall exposure must stay at or
// below 2.0 ("OK"; 10 is an unhardened service), and the settings the
// install guide promises must be in force.
func TestSystemdUnitHardened(t *testing.T) {
	testenv.IntegrationTest(t)
	unit, err := os.ReadFile("systemd/graylane.service")
	if err != nil {
		t.Fatal(err)
	}
	root, path := systemRoot(t, unit)
	err, out := analyze(t, "security", "--offline=yes", "--no-pager", "--threshold=20", "--root="+root, path)
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 or failure: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Overall exposure level for graylane.service") {
		t.Fatalf("no exposure level in the output:\n%s", out)
	}
	t.Logf("%s", out[strings.LastIndex(out, "→"):])
	for _, want := range []string{"User=graylane", "ProtectSystem=strict", "StateDirectory=graylane", "NoNewPrivileges=yes",
		"Restart=on-failure", "EnvironmentFile=-/etc/graylane/graylane.env", "CapabilityBoundingSet=\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("graylane.service lacks %q", strings.TrimSpace(want))
		}
	}
	// A unit without the hardening must score worse than the threshold:
	// the threshold check above is not vacuous.
	var plain []string
	for _, l := range strings.Split(string(unit), "\n") {
		if strings.HasPrefix(l, "Protect") || strings.HasPrefix(l, "Restrict") || strings.HasPrefix(l, "SystemCall") ||
			strings.HasPrefix(l, "Private") || strings.HasPrefix(l, "Capability") || strings.HasPrefix(l, "NoNewPrivileges") ||
			strings.HasPrefix(l, "MemoryDeny") || strings.HasPrefix(l, "LockPersonality") || strings.HasPrefix(l, "User=") {
			continue
		}
		plain = append(plain, l)
	}
	root, path = systemRoot(t, []byte(strings.Join(plain, "\n")))
	if err, out := analyze(t, "security", "--offline=yes", "--no-pager", "--threshold=20", "--root="+root, path); err == nil {
		t.Fatalf("an unhardened unit passed the threshold:\n%s", out)
	}
}

// TestSystemdEnvFile checks that every setting in graylane.env is a
// GRAYLANE_ variable systemd can parse (KEY=value, no export) and that the
// config example names the state directory the unit creates.
func TestSystemdEnvFile(t *testing.T) {
	env, err := os.ReadFile("systemd/graylane.env")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, l := range strings.Split(string(env), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "#GRAYLANE_") && !strings.Contains(l, "=") {
				t.Errorf("graylane.env:%d: commented setting without '=': %q", i+1, l)
			}
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok || !strings.HasPrefix(k, "GRAYLANE_") || strings.ContainsAny(k, " \t") {
			t.Errorf("graylane.env:%d: %q is not a GRAYLANE_KEY=value line", i+1, l)
		}
		n++
	}
	if n == 0 {
		t.Fatal("graylane.env sets nothing")
	}
	cfg, err := os.ReadFile("systemd/graylane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "dir: /var/lib/graylane") {
		t.Errorf("graylane.yaml's data.dir is not the unit's StateDirectory /var/lib/graylane")
	}
}

// TestSystemdSysusers creates the unit's user from graylane.sysusers with
// Debian's systemd-sysusers in a scratch root.
func TestSystemdSysusers(t *testing.T) {
	testenv.IntegrationTest(t)
	bin := testenv.LookPath(t, "systemd-sysusers")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	file, err := filepath.Abs("systemd/graylane.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--root="+root, file).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	line := ""
	for _, l := range strings.Split(string(passwd), "\n") {
		if strings.HasPrefix(l, "graylane:") {
			line = l
		}
	}
	f := strings.Split(line, ":")
	if len(f) != 7 || f[5] != "/var/lib/graylane" || f[6] != "/usr/sbin/nologin" {
		t.Fatalf("passwd entry %q, want user graylane with home /var/lib/graylane and no login shell", line)
	}
	if uid, _ := strconv.Atoi(f[2]); uid == 0 || uid >= 1000 {
		t.Fatalf("uid %s, want a system uid", f[2])
	}
}
