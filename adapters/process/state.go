package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// record is one instance's state file, written before the instance counts
// as started (first with PID 0 before the fork, then with the PID), so a
// later Backend on the same StateDir can adopt it instead of starting the
// slot again.
type record struct {
	ID      string `json:"id"`
	App     string `json:"app"`
	Version string `json:"version"`
	Slot    int    `json:"slot"`
	// PID is 0 while the process is being started.
	PID int `json:"pid"`
	// StartTicks is the process start time in clock ticks after boot
	// (/proc/<pid>/stat field 22): a reused PID has another.
	StartTicks uint64    `json:"startTicks,omitempty"`
	Port       int       `json:"port"`
	Addr       string    `json:"addr"` // where graylane reaches it (host:port)
	Argv       []string  `json:"argv"`
	Dir        string    `json:"dir,omitempty"`
	Nonce      string    `json:"nonce"` // in the instance's environment, see envMarker
	StartedAt  time.Time `json:"startedAt"`
	Restarts   int       `json:"restarts"`
	Log        string    `json:"log"`
}

// markerVar is set in every instance's environment to ID.Nonce, which finds
// an instance whose PID was never recorded (graylane died during the fork).
const markerVar = "GRAYLANE_INSTANCE"

func (r *record) marker() string { return markerVar + "=" + r.ID + "." + r.Nonce }

// appFile is an app's desired state: what Apply was last given, so a
// restarted graylane resumes (restarting dead instances, stopping unwanted
// ones) before the engine calls again. (Files of graylane before the
// built-in proxy served every backend also hold a "split", which is
// ignored: the proxy keeps its own routes.)
type appFile struct {
	Release  *spec.Release    `json:"release,omitempty"`
	Replicas traffic.Replicas `json:"replicas,omitempty"`
}

// InstanceKind is the schema of instance records:
//
//	0  records of graylane before versions existed (no "schema" member)
//	1  "schema": 1, otherwise the same
//
// The files are this graylane's own (one machine), so they are written at
// the current version at once; an older graylane reading a newer file
// refuses to start instead of adopting or replacing its instance.
func InstanceKind() schema.Kind {
	return schema.Kind{Name: "process-instance", What: "process instance record", Current: 1, Unversioned: 0,
		Steps: []schema.Step{{Change: `the "schema" member`}}}
}

// AppFileKind is the schema of an app's desired-state file (app.json);
// versions as InstanceKind.
func AppFileKind() schema.Kind {
	return schema.Kind{Name: "process-app", What: "process app file", Current: 1, Unversioned: 0,
		Steps: []schema.Step{{Change: `the "schema" member`}}}
}

type layout struct{ root string }

func (l layout) appsDir() string                { return filepath.Join(l.root, "apps") }
func (l layout) appDir(app string) string       { return filepath.Join(l.root, "apps", app) }
func (l layout) appFile(app string) string      { return filepath.Join(l.appDir(app), "app.json") }
func (l layout) instancesDir(app string) string { return filepath.Join(l.appDir(app), "instances") }
func (l layout) logsDir(app string) string      { return filepath.Join(l.appDir(app), "logs") }
func (l layout) recordFile(app, id string) string {
	return filepath.Join(l.instancesDir(app), id+".json")
}
func (l layout) logFile(app, id string) string { return filepath.Join(l.logsDir(app), id+".log") }

// writeJSON writes v, a record of kind k, at k's current version to path
// atomically and durably: a temporary file in the same directory, fsync,
// rename, fsync of the directory.
func writeJSON(path string, k schema.Kind, v any) error {
	b, err := json.Marshal(v)
	if err == nil {
		b, err = k.Encode(b, k.Current)
	}
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	b = out.Bytes()
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// readJSON reads a record of kind k of any version this graylane reads
// into v; a newer one is an error wrapping schema.ErrNewer.
func readJSON(path string, k schema.Kind, v any) error {
	_, err := readVersioned(path, k, v)
	return err
}

// readVersioned is readJSON that also returns the version the file had.
func readVersioned(path string, k schema.Kind, v any) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	cur, from, err := k.Decode(b)
	if err == nil {
		err = json.Unmarshal(cur, v)
	}
	if err != nil {
		return from, fmt.Errorf("%s: %w", path, err)
	}
	return from, nil
}

// removeFile removes path and syncs its directory; a missing file is fine.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// readRecords returns the app's instance records; unreadable ones are
// reported in bad (path: error) and left in place. A record written by a
// newer graylane is an error: its instance must be neither adopted nor
// started again beside it.
func (l layout) readRecords(app string) (recs []record, bad []string, err error) {
	entries, err := os.ReadDir(l.instancesDir(app))
	if err != nil {
		return nil, nil, nil
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		var r record
		p := filepath.Join(l.instancesDir(app), name)
		if err := readJSON(p, InstanceKind(), &r); err != nil {
			if errors.Is(err, schema.ErrNewer) {
				return nil, nil, err
			}
			bad = append(bad, err.Error())
			continue
		}
		if r.ID+".json" != name || r.App != app || len(r.Argv) == 0 {
			bad = append(bad, p+": does not describe an instance of "+app)
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad, nil
}
