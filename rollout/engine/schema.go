package engine

import (
	"encoding/json"
	"fmt"

	"github.com/graylane/graylane/internal/schema"
)

// RecordKind is the schema of a Record as a Store keeps it (docs/upgrades.md
// lists every version):
//
//	0  records of graylane before versions existed (no "schema" member);
//	   the oldest of them mark a rollback in progress as status.fast
//	1  "schema": 1; a rollback in progress is status.rollback
func RecordKind() schema.Kind {
	return schema.Kind{
		Name: "rollout-record", What: "rollout record",
		Current: 1, Unversioned: 0,
		Steps: []schema.Step{{
			Change: `the "schema" member; status.fast (records older than the rename) becomes status.rollback`,
			Up:     fastToRollback,
			// Down: none. Version 0 readers (the release before versions)
			// read status.rollback already.
		}},
	}
}

// fastToRollback renames status.fast to status.rollback.
func fastToRollback(o schema.Object) error {
	st, err := o.Member("status")
	if err != nil || st == nil {
		return err
	}
	fast, ok := st["fast"]
	if !ok {
		return nil
	}
	delete(st, "fast")
	if string(fast) == "true" {
		st["rollback"] = json.RawMessage("true")
	}
	return o.Set("status", st)
}

// DecodeRecord reads a Record of any version this graylane reads, migrated
// to the current one; a record of a newer graylane is refused with an
// error wrapping schema.ErrNewer.
func DecodeRecord(b []byte) (Record, error) {
	var rec Record
	if err := decodeRecordInto(b, &rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// DecodeRecordHead is DecodeRecord without the revision log (Revisions
// stays nil): what a list row needs. Every replica reads every app's
// record changes for the apps list, and the log — the spec's text, the
// open revision's diff and steps — is most of a record during a release.
func DecodeRecordHead(b []byte) (Record, error) {
	var h recordHead
	if err := decodeRecordInto(b, &h); err != nil {
		return Record{}, err
	}
	return h.Record, nil
}

// decodeRecordInto migrates b to the current version and decodes it
// into v (a *Record or a *recordHead).
func decodeRecordInto(b []byte, v any) error {
	cur, _, err := RecordKind().Decode(b)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(cur, v); err != nil {
		return fmt.Errorf("decode rollout record: %w", err)
	}
	return nil
}

// recordHead decodes a Record but skips its revision log: the outer
// field, shallower than Record's, takes the "revisions" member.
type recordHead struct {
	Record
	Revisions skipJSON `json:"revisions"`
}

// skipJSON takes a JSON value and keeps nothing of it.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }
