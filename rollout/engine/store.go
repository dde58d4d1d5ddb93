package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
)

// ErrConflict is returned (wrapped) by Store.Save when the record changed
// since it was loaded.
var ErrConflict = errors.New("state record changed concurrently")

// ErrNotFound is returned (wrapped) when an app is unknown.
var ErrNotFound = errors.New("app not found")

// Record is everything graylane persists about one app.
type Record struct {
	// Spec is the last good release spec (JSON), the one in force.
	Spec json.RawMessage `json:"spec,omitempty"`
	// SpecRevision is the source revision Spec was read at.
	SpecRevision int64 `json:"specRevision,omitempty"`
	// SpecError describes the newest document if it was rejected; the last
	// good Spec stays in force meanwhile.
	SpecError *FieldError `json:"specError,omitempty"`
	// Status is the planner's status.
	Status rollout.Status `json:"status"`
	// Identity is the release identity of Spec (its version, or
	// "<version>_cfg<digest>" for a config-only change), as of the last
	// pass that planned it.
	Identity string `json:"identity,omitempty"`
	// Commands waiting for the next pass, oldest first.
	Commands []PendingCommand `json:"commands,omitempty"`
	// LastCommand is the outcome of the last command processed.
	LastCommand *CommandResult `json:"lastCommand,omitempty"`
	// Deleting is set once the app's spec was removed from the source.
	Deleting bool `json:"deleting,omitempty"`
	// Driver names the graylane replica that drove the app when the
	// record was written (ha.id; empty for a lone graylane).
	Driver string `json:"driver,omitempty"`
	// Observed counts the app's instances per version as its driver last
	// saw them, so that every replica lists them (only the driver holds
	// the instances themselves).
	Observed []VersionCount `json:"observed,omitempty"`
	// Revisions is the app's release-records log: the revision in
	// progress and who wrote the document in force (records.Log, which
	// carries its own schema version).
	Revisions *records.Log `json:"revisions,omitempty"`
	// UpdatedAt is when the record was last saved.
	UpdatedAt time.Time `json:"updatedAt"`
}

// FieldError is a rejected spec's error.
type FieldError struct {
	Error    string `json:"error"`
	Field    string `json:"field,omitempty"`
	Revision int64  `json:"revision,omitempty"`
}

// PendingCommand is an operator command queued for an app.
type PendingCommand struct {
	ID      string          `json:"id"`
	Command rollout.Command `json:"command"`
	At      time.Time       `json:"at"`
	// By names the caller (a token name) and Via how it came (api,
	// console), for the revision a command starts.
	By  string `json:"by,omitempty"`
	Via string `json:"via,omitempty"`
}

// CommandResult is what became of a command.
type CommandResult struct {
	ID      string          `json:"id"`
	Command rollout.Command `json:"command"`
	Error   string          `json:"error,omitempty"`
}

// Store persists Records with compare-and-swap.
type Store interface {
	// Load returns an app's record and its revision; a missing app yields
	// an empty record and revision 0.
	Load(ctx context.Context, app string) (Record, int64, error)
	// Save writes rec if the stored revision still equals rev (0: must not
	// exist) and returns the new revision, or an error wrapping ErrConflict.
	Save(ctx context.Context, app string, rec Record, rev int64) (int64, error)
	// Delete removes an app's record if its revision equals rev.
	Delete(ctx context.Context, app string, rev int64) error
	// Apps lists the apps with a record.
	Apps(ctx context.Context) ([]string, error)
}

// MemoryStore is an in-memory Store for tests.
type MemoryStore struct {
	mu   sync.Mutex
	recs map[string]memRec
	rev  int64
	// Saves counts successful saves.
	Saves int
}

type memRec struct {
	data []byte
	rev  int64
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{recs: map[string]memRec{}} }

// Load implements Store.
func (m *MemoryStore) Load(ctx context.Context, app string) (Record, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[app]
	if !ok {
		return Record{}, 0, nil
	}
	rec, err := DecodeRecord(r.data)
	if err != nil {
		return Record{}, 0, fmt.Errorf("record of %s: %w", app, err)
	}
	return rec, r.rev, nil
}

// Save implements Store.
func (m *MemoryStore) Save(ctx context.Context, app string, rec Record, rev int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs[app].rev != rev {
		return 0, fmt.Errorf("save %s at revision %d (now %d): %w", app, rev, m.recs[app].rev, ErrConflict)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	kind := RecordKind()
	if b, err = kind.Encode(b, kind.Current); err != nil {
		return 0, err
	}
	m.rev++
	m.recs[app] = memRec{data: b, rev: m.rev}
	m.Saves++
	return m.rev, nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(ctx context.Context, app string, rev int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs[app].rev != rev {
		return fmt.Errorf("delete %s: %w", app, ErrConflict)
	}
	delete(m.recs, app)
	return nil
}

// Apps implements Store.
func (m *MemoryStore) Apps(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for a := range m.recs {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}
