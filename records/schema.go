package records

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/internal/upgrade"
)

// SchemaVersion is the version of every record this package writes
// (revisions, release summaries, intents, the revision log kept with an
// app's state, deletion marks). A reader refuses a record with a newer
// version instead of misreading it: a graylane that was downgraded after
// a newer one wrote says so.
const SchemaVersion = 1

// ErrNewerSchema is returned (wrapped) when a record was written by a
// newer graylane than this one: schema.ErrNewer, as for every record kind.
var ErrNewerSchema = schema.ErrNewer

// CheckSchema returns an error wrapping ErrNewerSchema (a
// *schema.NewerError) when v is newer than SchemaVersion. Records without
// the field (0) are read as version 1.
func CheckSchema(what string, v int) error {
	if v > SchemaVersion {
		return &schema.NewerError{Kind: what, Version: v, Reads: SchemaVersion}
	}
	return nil
}

// The kinds of record this package keeps (docs/upgrades.md), born at
// version 1: a record without "schema" is version 1. The revision log kept
// inside an app's rollout record is part of that record's kind
// (engine.RecordKind): a change to it is a step of that kind.
//
// Their writes do not go through the upgrade Gate yet: a kind with a
// single version has nothing to hold back. The release that adds a step to
// one of them must write it at upgrade.Gate.WriteAt's version.
func kind(name, what string) schema.Kind {
	return schema.Kind{Name: name, What: what, Current: SchemaVersion, Unversioned: 1}
}

// RevisionKind is the schema of a Revision.
func RevisionKind() schema.Kind { return kind("records-revision", "release revision") }

// SummaryKind is the schema of a release Summary (statistics).
func SummaryKind() schema.Kind { return kind("records-summary", "release summary") }

// DeletionKind is the schema of a deleted app's mark.
func DeletionKind() schema.Kind { return kind("records-deletion", "deletion mark") }

// IntentKind is the schema of an Intent (a rollback to a revision on its
// way through the centre).
func IntentKind() schema.Kind { return kind("records-intent", "rollback intent") }

// Collections are where a Store under prefix (DefaultPrefix when empty)
// keeps each kind, for the upgrade Gate.
func Collections(prefix string) []upgrade.Collection {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return []upgrade.Collection{
		{Kind: RevisionKind(), Prefix: prefix + "revisions/"},
		{Kind: SummaryKind(), Prefix: prefix + "releases/"},
		{Kind: DeletionKind(), Prefix: prefix + "deleted/", Children: true},
		{Kind: IntentKind(), Prefix: prefix + "intents/"},
	}
}

// decode unmarshals a record and checks its schema version.
func decode(what string, b []byte, v any, schema func() int) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return CheckSchema(what, schema())
}
