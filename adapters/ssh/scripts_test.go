package ssh

import (
	"strings"
	"testing"
)

// Every path and word reaches the remote shell single-quoted, a quote
// inside one included.
func TestScriptsQuoteEveryWord(t *testing.T) {
	root := "/srv/it's here"
	q := `'/srv/it'\''s here`
	for name, s := range map[string]string{
		"switch":  switchScript(root, "v2", "exec true"),
		"remove":  removeCurrentScript(root),
		"prune":   pruneScript(root, []string{"v0", "v1"}),
		"finish":  finishScript(root, root+"/releases/.tmp-v2-x", "v2", []string{"conf/app.yaml"}),
		"prepare": (&prepareScript{root: root, dir: root + "/releases/.tmp-v2-x"}).String(),
		"untar":   untarCommand(root + "/releases/.tmp-v2-x"),
	} {
		if !strings.Contains(s, q) {
			t.Errorf("%s script does not quote the root %q:\n%s", name, root, s)
		}
		if strings.Contains(strings.ReplaceAll(s, q, ""), root) {
			t.Errorf("%s script has the root unquoted:\n%s", name, s)
		}
	}
}

// The switch script renames a fresh link over current (never ln -sfn),
// prints the marker only once current points at the release, and ends
// with the restart line.
func TestSwitchScriptOrder(t *testing.T) {
	s := switchScript("/srv/app", "v2", "exec ./restart")
	steps := []string{"set -eu", `test -d "$R/releases/"'v2'`, `ln -s -- 'releases/v2' "$L"`, `mv -T -- "$L" "$R/current"`, "echo " + switchedMarker, "exec ./restart"}
	at := 0
	for _, step := range steps {
		i := strings.Index(s[at:], step)
		if i < 0 {
			t.Fatalf("switch script lacks %q after position %d:\n%s", step, at, s)
		}
		at += i + len(step)
	}
	if strings.Contains(s, "ln -sfn") {
		t.Fatal("switch script replaces current in place")
	}
}

// The finish script links shared files before the rename into place, and
// the rename is last.
func TestFinishScriptRenamesLast(t *testing.T) {
	s := finishScript("/srv/app", "/srv/app/releases/.tmp-v2-x", "v2", []string{"a.yaml", "conf/b.yaml"})
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if last := lines[len(lines)-1]; last != `mv -T -- '/srv/app/releases/.tmp-v2-x' '/srv/app/releases/v2'` {
		t.Fatalf("last line %q", last)
	}
	if !strings.Contains(s, `ln -s -- '/srv/app/shared/conf/b.yaml' '/srv/app/releases/.tmp-v2-x/conf/b.yaml'`) {
		t.Fatalf("no link of conf/b.yaml:\n%s", s)
	}
}
