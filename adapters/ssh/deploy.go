// Deploy: plan the moves under the deploy lock, upload what is missing,
// then switch hosts batch by batch (moveHost), reporting per host.

package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// HostResult is what happened to one host during a Deploy.
type HostResult struct {
	Host     string
	From, To string
	Canary   bool
	// Batch is the host's batch, from 0.
	Batch int
	// Uploaded and Reused count the release's files sent over SSH and
	// copied on the host from the release in force (equal checksums);
	// both are 0 when the release directory already existed.
	Uploaded, Reused int
	UploadedBytes    int64
	// Stage is the upload (0 if the release directory existed). Switch is
	// switching current and running the restart command, one remote
	// script; Health is the wait for the health check. Switch+Health is
	// what serving a version whose directory exists costs: a rollback.
	Stage, Switch, Health time.Duration
	Err                   error
}

// Report is the outcome of a Deploy.
type Report struct {
	App   string
	Hosts []HostResult
}

// HostError names the host and step a failure happened at.
type HostError struct {
	Host, Step string
	Err        error
}

func (e *HostError) Error() string { return fmt.Sprintf("host %s: %s: %v", e.Host, e.Step, e.Err) }

func (e *HostError) Unwrap() error { return e.Err }

// Deploy is Apply returning what happened per host.
//
// Steps: inspect every host (read only) and plan the moves (PlanMoves);
// nothing to do returns at once. Otherwise take the app's deploy lock (in
// this process, and a flock on every host's {root}/.graylane.lock, so two
// releases never touch the same hosts at once; ErrLocked if held),
// inspect again and re-plan under the lock, upload every missing release
// before switching any host, then switch batch by batch: batch size is
// strategy.maxUnavailable of the hosts (default 25%, at least 1), canary
// hosts first. Per host: hooks.before, switch current (new symlink renamed
// over it), restart, health check, hooks.after, prune old releases.
func (b *Backend) Deploy(ctx context.Context, rel *spec.Release, want traffic.Replicas) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := sshSection(rel)
	if err != nil {
		return nil, fmt.Errorf("ssh apply: %w", err)
	}
	app := rel.App
	report := &Report{App: app}
	if _, err := adapters.CheckReplicas(app, want); err != nil {
		return report, fmt.Errorf("ssh backend: %w", err)
	}
	b.mu.Lock()
	b.releases[app] = rel
	b.mu.Unlock()
	hosts := hostsOf(cfg)

	moves, _, err := b.plan(ctx, rel, hosts, want)
	if err != nil || len(moves) == 0 {
		return report, err
	}

	b.mu.Lock()
	mu := b.locks[app]
	if mu == nil {
		mu = &sync.Mutex{}
		b.locks[app] = mu
	}
	b.mu.Unlock()
	if !mu.TryLock() {
		return report, fmt.Errorf("ssh apply of app %s: %w in this process", app, ErrLocked)
	}
	defer mu.Unlock()
	locks := make([]*remoteLock, len(hosts))
	defer func() {
		for _, l := range locks {
			if l != nil {
				l.release()
			}
		}
	}()
	lockErrs := forEach(len(hosts), b.cfg.Parallel, func(i int) error {
		l, err := b.pool.lock(ctx, cfg.User, hosts[i].sshAddr, hosts[i].root, cfg.EffectiveCommandTimeout())
		if err != nil {
			return &HostError{Host: hosts[i].name, Step: "take deploy lock", Err: err}
		}
		locks[i] = l
		return nil
	})
	if err := errors.Join(lockErrs...); err != nil {
		return report, fmt.Errorf("ssh apply of app %s: %w", app, err)
	}
	moves, infos, err := b.plan(ctx, rel, hosts, want)
	if err != nil || len(moves) == 0 {
		return report, err
	}
	byName := map[string]int{}
	for i, h := range hosts {
		byName[h.name] = i
	}
	results := make([]HostResult, len(moves))
	for i, m := range moves {
		results[i] = HostResult{Host: m.Host, From: m.From, To: m.To, Canary: m.Canary}
	}
	b.log.Info("deploy planned", "app", app, "version", rel.Version, "want", want, "moves", len(moves))

	// Upload every missing release before switching anything. Each
	// version's artifact is read (and checksummed) once per Deploy.
	var artMu sync.Mutex
	arts := map[string][]Entry{}
	artifactOf := func(version string) ([]Entry, error) {
		artMu.Lock()
		defer artMu.Unlock()
		if e, ok := arts[version]; ok {
			return e, nil
		}
		p, err := spec.Render(cfg.Artifact, spec.TemplateData{App: app, Version: spec.CodeVersion(version)})
		if err != nil {
			return nil, err
		}
		e, err := b.arts.entries(p)
		if err != nil {
			return nil, err
		}
		arts[version] = e
		return e, nil
	}
	stageErrs := forEach(len(moves), b.cfg.Parallel, func(i int) error {
		m := moves[i]
		h := hosts[byName[m.Host]]
		info := infos[byName[m.Host]]
		if m.To == "" || contains(info.releases, m.To) {
			return nil
		}
		start := time.Now()
		entries, err := artifactOf(m.To)
		if err != nil {
			return &HostError{Host: h.name, Step: "read artifact of " + m.To, Err: err}
		}
		var overlay []Entry
		if h.spec.ConfigDir != "" {
			var err error
			if overlay, err = scanDir(h.spec.ConfigDir); err != nil {
				return &HostError{Host: h.name, Step: "read config dir", Err: err}
			}
		}
		man := buildManifest(m.To, entries, overlay)
		up, reused, n, err := b.stage(ctx, cfg, h, info, man)
		results[i].Uploaded, results[i].Reused, results[i].UploadedBytes = up, reused, n
		results[i].Stage = time.Since(start)
		if err != nil {
			return &HostError{Host: h.name, Step: "upload " + m.To, Err: err}
		}
		b.log.Info("release uploaded", "app", app, "host", h.name, "version", m.To, "uploaded", up, "reused", reused, "bytes", n, "took", results[i].Stage)
		return nil
	})
	if err := errors.Join(stageErrs...); err != nil {
		report.Hosts = results
		return report, fmt.Errorf("ssh apply of app %s: no host switched: %w", app, err)
	}

	size := max(1, rel.Strategy.MaxUnavailable.Scaled(len(hosts), false, len(hosts)/4))
	batches := Batches(moves, rel.Version, size)
	idx := map[string]int{}
	for i, m := range moves {
		idx[m.Host] = i
	}
	for bi, batch := range batches {
		errs := forEach(len(batch), len(batch), func(k int) error {
			m := batch[k]
			i := idx[m.Host]
			results[i].Batch = bi
			h := hosts[byName[m.Host]]
			err := b.moveHost(ctx, rel, h, infos[byName[m.Host]], m, &results[i])
			results[i].Err = err
			b.changed(app)
			return err
		})
		if err := errors.Join(errs...); err != nil {
			report.Hosts = results
			rest := len(batches) - bi - 1
			return report, fmt.Errorf("ssh apply of app %s: batch %d of %d failed, %d batch(es) not started: %w", app, bi+1, len(batches), rest, err)
		}
	}
	report.Hosts = results
	return report, nil
}

// plan inspects the hosts and plans the moves.
func (b *Backend) plan(ctx context.Context, rel *spec.Release, hosts []host, want traffic.Replicas) ([]Move, []hostInfo, error) {
	cfg := rel.Backend.SSH
	infos := make([]hostInfo, len(hosts))
	errs := forEach(len(hosts), b.cfg.Parallel, func(i int) error {
		info, err := b.inspect(ctx, cfg.User, hosts[i], cfg.EffectiveCommandTimeout())
		if err != nil {
			return &HostError{Host: hosts[i].name, Step: "inspect", Err: err}
		}
		infos[i] = info
		return nil
	})
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("ssh apply of app %s: %w", rel.App, err)
	}
	states := make([]HostState, len(hosts))
	for i, h := range hosts {
		states[i] = HostState{Name: h.name, Version: infos[i].current, Canary: h.canary}
		b.mu.Lock()
		b.last[rel.App+"|"+h.name] = infos[i].current
		b.mu.Unlock()
	}
	return PlanMoves(states, want, rel.Version), infos, nil
}

// moveHost performs one move on one host.
func (b *Backend) moveHost(ctx context.Context, rel *spec.Release, h host, info hostInfo, m Move, res *HostResult) error {
	cfg := rel.Backend.SSH
	timeout := cfg.EffectiveCommandTimeout()
	log := b.log.With("app", rel.App, "host", h.name, "from", m.From, "to", m.To)
	if m.To == "" {
		if len(cfg.Stop) > 0 {
			if err := b.runArgv(ctx, cfg, h, rel.App, m.From, h.root+"/current", cfg.Stop, timeout); err != nil {
				return &HostError{Host: h.name, Step: "stop", Err: err}
			}
		}
		if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, removeCurrentScript(h.root)); err != nil {
			return &HostError{Host: h.name, Step: "remove current", Err: err}
		}
		log.Info("host stopped")
		return nil
	}
	relDir := h.root + "/releases/" + m.To
	if cfg.Hooks != nil && len(cfg.Hooks.Before) > 0 {
		if err := b.runArgv(ctx, cfg, h, rel.App, m.To, relDir, cfg.Hooks.Before, timeout); err != nil {
			return &HostError{Host: h.name, Step: "hooks.before", Err: err}
		}
	}
	// One remote script switches current and execs the restart command:
	// one round trip (and one remote shell start) per host.
	start := time.Now()
	restart, err := b.argvScript(h, rel.App, m.To, relDir, cfg.Restart)
	if err != nil {
		return &HostError{Host: h.name, Step: "restart", Err: err}
	}
	out, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, switchScript(h.root, m.To, restart))
	res.Switch = time.Since(start)
	if err != nil {
		if !bytes.HasPrefix(out, []byte(switchedMarker+"\n")) {
			return &HostError{Host: h.name, Step: "switch current to " + m.To, Err: err}
		}
		return &HostError{Host: h.name, Step: "restart (current switched to " + m.To + ")", Err: err}
	}
	start = time.Now()
	if err := b.waitHealthy(ctx, h, rel); err != nil {
		res.Health = time.Since(start)
		log.Error("host unhealthy after switch", "err", err)
		return &HostError{Host: h.name, Step: "health check of " + m.To, Err: err}
	}
	res.Health = time.Since(start)
	log.Info("host switched", "switch_and_restart", res.Switch, "health", res.Health)
	if cfg.Hooks != nil && len(cfg.Hooks.After) > 0 {
		if err := b.runArgv(ctx, cfg, h, rel.App, m.To, relDir, cfg.Hooks.After, timeout); err != nil {
			return &HostError{Host: h.name, Step: "hooks.after", Err: err}
		}
	}
	order := append([]string{m.To}, info.releases...)
	var uniq []string
	for _, r := range order {
		if !contains(uniq, r) {
			uniq = append(uniq, r)
		}
	}
	if del := Prune(uniq, cfg.EffectiveKeepReleases(), m.To, m.From); len(del) > 0 {
		if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, pruneScript(h.root, del)); err != nil {
			log.Warn("pruning old releases failed", "err", err)
		} else {
			log.Info("old releases pruned", "removed", del)
		}
	}
	return nil
}

// stage creates {root}/releases/{version} on a host: files whose checksum
// matches a file of the release in force are copied there on the host, the
// others are uploaded as one tar stream; the manifest goes last; linked
// files are symlinked to {root}/shared; the finished directory is renamed
// into place, so a release directory is always complete.
func (b *Backend) stage(ctx context.Context, cfg *spec.SSHBackend, h host, info hostInfo, man *Manifest) (uploaded, reused int, bytes int64, err error) {
	timeout := cfg.EffectiveCommandTimeout()
	var cur *Manifest
	curDir := ""
	if info.current != "" {
		curDir = h.root + "/releases/" + info.current
		out, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, catScript(curDir+"/"+ManifestName))
		if err == nil {
			var m Manifest
			if json.Unmarshal(out, &m) == nil {
				cur = &m
			}
		}
	}
	byPath := map[string]Entry{}
	byHash := map[string]string{}
	if cur != nil {
		for _, e := range cur.Entries {
			if e.Type == "f" && checkRelPath(e.Path) == nil {
				byPath[e.Path] = e
				byHash[e.SHA256+fmt.Sprintf("/%o", e.Mode)] = e.Path
			}
		}
	}
	tmp := h.root + "/releases/.tmp-" + man.Version + "-" + randid.Hex(6)
	prep := prepareScript{root: h.root, dir: tmp}
	upload := map[string]bool{}
	made := map[string]bool{}
	for _, e := range man.Entries {
		if e.Type != "f" {
			continue
		}
		src := ""
		if c, ok := byPath[e.Path]; ok && c.SHA256 == e.SHA256 && c.Mode == e.Mode {
			src = e.Path
		} else if p, ok := byHash[e.SHA256+fmt.Sprintf("/%o", e.Mode)]; ok {
			src = p
		}
		if src == "" {
			upload[e.Path] = true
			uploaded++
			bytes += e.Size
			continue
		}
		if d := path.Dir(e.Path); d != "." && !made[d] {
			prep.mkdir(d)
			made[d] = true
		}
		prep.copy(curDir+"/"+src, e.Path)
		reused++
	}
	if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, prep.String()); err != nil {
		return uploaded, reused, bytes, fmt.Errorf("prepare %s: %w", tmp, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, man, upload)) }()
	_, err = b.pool.run(ctx, cfg.User, h.sshAddr, b.cfg.UploadTimeout, untarCommand(tmp), pr)
	pr.Close()
	if err != nil {
		return uploaded, reused, bytes, fmt.Errorf("upload into %s: %w", tmp, err)
	}
	if _, err := b.pool.script(ctx, cfg.User, h.sshAddr, timeout, finishScript(h.root, tmp, man.Version, cfg.LinkedFiles)); err != nil {
		return uploaded, reused, bytes, fmt.Errorf("finish %s: %w", tmp, err)
	}
	return uploaded, reused, bytes, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
