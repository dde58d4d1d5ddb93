package engine

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/graylane/graylane/internal/schema"
)

// Version step 0 → 1 of the rollout record: a record of the release
// before versions (no "schema"; the oldest ones with status.fast) reads as
// the same record, status.fast as a rollback in progress, and is written
// back as version 1 under the new name.
func TestRecordSchemaStep0To1(t *testing.T) {
	kind := RecordKind()
	if err := kind.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, v0 string
		rollback bool
	}{
		{"legacy status.fast", `{"spec":{"app":"demo"},"status":{"phase":"Progressing","stableVersion":"v2","canaryVersion":"v1","step":0,"fast":true},"updatedAt":"2026-01-02T03:04:05Z"}`, true},
		{"status.fast false", `{"spec":{"app":"demo"},"status":{"phase":"Progressing","stableVersion":"v2","canaryVersion":"v1","step":0,"fast":false},"updatedAt":"2026-01-02T03:04:05Z"}`, false},
		{"status.rollback", `{"spec":{"app":"demo"},"status":{"phase":"Progressing","stableVersion":"v2","canaryVersion":"v1","step":0,"rollback":true},"updatedAt":"2026-01-02T03:04:05Z"}`, true},
		{"plain", `{"spec":{"app":"demo"},"status":{"phase":"Progressing","stableVersion":"v2","canaryVersion":"v1","step":0},"updatedAt":"2026-01-02T03:04:05Z"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := DecodeRecord([]byte(tc.v0))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status.Rollback != tc.rollback || rec.Status.CanaryVersion != "v1" || rec.Status.StableVersion != "v2" || string(rec.Spec) != `{"app":"demo"}` || rec.UpdatedAt.IsZero() {
				t.Fatalf("read as %+v", rec)
			}
			v1, from, err := kind.Convert([]byte(tc.v0), 1)
			if err != nil || from != 0 {
				t.Fatalf("migrate: from %d, %v", from, err)
			}
			var back struct {
				Schema int            `json:"schema"`
				Status map[string]any `json:"status"`
			}
			if err := json.Unmarshal(v1, &back); err != nil {
				t.Fatal(err)
			}
			if back.Schema != 1 || back.Status["fast"] != nil || (back.Status["rollback"] == true) != tc.rollback {
				t.Fatalf("migrated record %s", v1)
			}
			again, _, err := kind.Convert(v1, 1)
			if err != nil || string(again) != string(v1) {
				t.Fatalf("migrating twice changed %s into %s (%v)", v1, again, err)
			}
			// written for a version-0 reader: no schema member, same content
			old, err := kind.Encode(v1, 0)
			if err != nil {
				t.Fatal(err)
			}
			var v0 Record
			if err := json.Unmarshal(old, &v0); err != nil || v0.Status.Rollback != tc.rollback {
				t.Fatalf("version 0 encoding %s: %v", old, err)
			}
			if _, ok := decodeMap(t, old)["schema"]; ok {
				t.Fatalf("version 0 carries a schema member: %s", old)
			}
		})
	}
}

func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A record of a newer graylane is refused, by the store too, and not
// written over by a save that never loaded it.
func TestNewerRecordRefused(t *testing.T) {
	if _, err := DecodeRecord([]byte(`{"schema":2,"status":{"phase":"Healthy"}}`)); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("DecodeRecord: %v", err)
	}
	m := NewMemoryStore()
	m.recs["demo"] = memRec{data: []byte(`{"schema":2,"status":{"phase":"Healthy"}}`), rev: 7}
	if _, _, err := m.Load(t.Context(), "demo"); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("Load: %v", err)
	}
}
