// Remote scripts: every shell text graylane sends to a host. Each word is
// single-quoted (quote); user commands are exec'd argv lists (argvScript).

package ssh

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/spec"
)

// hostInfo is what inspect reads from a host.
type hostInfo struct {
	// current is the version current points to ("" if none or not a
	// graylane release); link is the raw link target.
	current, link string
	// releases are the release directories, most recently used first.
	releases []string
}

func (b *Backend) inspect(ctx context.Context, user string, h host, timeout time.Duration) (hostInfo, error) {
	script := fmt.Sprintf(`R=%s
c=$(readlink -- "$R/current" 2>/dev/null) || c=
printf 'current=%%s\n' "$c"
if cd -- "$R/releases" 2>/dev/null; then ls -1t | sed 's/^/release=/'; fi
`, quote(h.root))
	out, err := b.pool.script(ctx, user, h.sshAddr, timeout, script)
	if err != nil {
		return hostInfo{}, err
	}
	var info hostInfo
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "current="); ok {
			info.link = v
			if name, ok := strings.CutPrefix(v, "releases/"); ok && spec.CheckVersion(name) == nil {
				info.current = name
			}
		} else if v, ok := strings.CutPrefix(line, "release="); ok && spec.CheckVersion(v) == nil {
			info.releases = append(info.releases, v)
		}
	}
	return info, nil
}

// switchedMarker is printed by the switch script once current points at
// the new release, so a failure is attributed to the switch or the restart.
const switchedMarker = "graylane-switched"

// argvScript renders a templated argv into a script line that cd's to dir,
// exports the GRAYLANE_* environment and execs the command. Every word is
// quoted: the remote shell only cd's, exports and execs.
func (b *Backend) argvScript(h host, app, version, dir string, argv []string) (string, error) {
	data := spec.SSHTemplateData{App: app, Version: version, Host: h.name, AppAddr: h.appAddr, Root: h.root, ReleaseDir: h.root + "/releases/" + version}
	words := make([]string, len(argv))
	for i, a := range argv {
		s, err := spec.RenderSSH(a, data)
		if err != nil {
			return "", fmt.Errorf("argument %d: %w", i, err)
		}
		words[i] = quote(s)
	}
	return fmt.Sprintf("cd -- %s\nexport GRAYLANE_APP=%s GRAYLANE_VERSION=%s GRAYLANE_HOST=%s GRAYLANE_ROOT=%s GRAYLANE_RELEASE_DIR=%s GRAYLANE_APP_ADDR=%s\nexec %s </dev/null\n",
		quote(dir), quote(app), quote(version), quote(h.name), quote(h.root), quote(data.ReleaseDir), quote(h.appAddr), strings.Join(words, " ")), nil
}

// runArgv runs a templated argv on the host in dir.
func (b *Backend) runArgv(ctx context.Context, cfg *spec.SSHBackend, h host, app, version, dir string, argv []string, timeout time.Duration) error {
	script, err := b.argvScript(h, app, version, dir, argv)
	if err != nil {
		return err
	}
	_, err = b.pool.script(ctx, cfg.User, h.sshAddr, timeout, "set -e\n"+script)
	return err
}

// switchScript points current at version (a new symlink renamed over it,
// so current is never missing), marks the release as used (pruning keeps
// the most recently used), prints switchedMarker and runs restart (an
// argvScript line, which execs).
func switchScript(root, version, restart string) string {
	return fmt.Sprintf(`set -eu
R=%s
test -d "$R/releases/"%s || { echo "release directory $R/releases/"%s" is missing" >&2; exit 1; }
L="$R/.current.tmp-"%s
rm -f -- "$L"
ln -s -- %s "$L"
mv -T -- "$L" "$R/current"
touch -- "$R/releases/"%s
echo %s
%s`, quote(root), quote(version), quote(version), quote(randid.Hex(6)), quote("releases/"+version), quote(version), switchedMarker, restart)
}

// removeCurrentScript removes the current link: the host serves nothing.
func removeCurrentScript(root string) string {
	return "rm -f -- " + quote(root+"/current") + "\n"
}

// pruneScript removes old release directories.
func pruneScript(root string, versions []string) string {
	args := make([]string, len(versions))
	for i, v := range versions {
		args[i] = quote(root + "/releases/" + v)
	}
	return "rm -rf -- " + strings.Join(args, " ") + "\n"
}

// catScript prints one file.
func catScript(file string) string { return "cat -- " + quote(file) + "\n" }

// prepareScript starts a release directory in dir (under
// {root}/releases/.tmp-*, after removing leftovers of interrupted
// uploads) by copying the files it can reuse from the release in force.
type prepareScript struct {
	root, dir string
	lines     strings.Builder
}

func (p *prepareScript) mkdir(rel string) { fmt.Fprintf(&p.lines, "mkdir -p -- %s\n", quote(rel)) }

func (p *prepareScript) copy(from, rel string) {
	fmt.Fprintf(&p.lines, "cp -p -- %s %s\n", quote(from), quote(rel))
}

func (p *prepareScript) String() string {
	return fmt.Sprintf("set -eu\nR=%s\nrm -rf -- \"$R\"/releases/.tmp-*\nmkdir -p -- %s \"$R/shared\"\ncd -- %s\n", quote(p.root), quote(p.dir), quote(p.dir)) +
		p.lines.String()
}

// untarCommand unpacks the tar stream on stdin into dir.
func untarCommand(dir string) string { return "tar -x --no-same-owner -f - -C " + quote(dir) }

// finishScript links the shared files into the staged directory tmp and
// renames it into place as the release of version, so a release directory
// is always complete.
func finishScript(root, tmp, version string, linked []string) string {
	var b strings.Builder
	b.WriteString("set -eu\n")
	for _, f := range linked {
		target := tmp + "/" + f
		fmt.Fprintf(&b, "rm -rf -- %s\nmkdir -p -- %s\nln -s -- %s %s\n", quote(target), quote(path.Dir(target)), quote(root+"/shared/"+f), quote(target))
	}
	fmt.Fprintf(&b, "mv -T -- %s %s\n", quote(tmp), quote(root+"/releases/"+version))
	return b.String()
}
