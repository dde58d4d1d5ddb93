package records

import (
	"encoding/json"
	"errors"
	"fmt"
)

// SchemaVersion is the version of every record this package writes
// (revisions, release summaries, intents, the revision log kept with an
// app's state, deletion marks). A reader refuses a record with a newer
// version instead of misreading it: a graylane that was downgraded after
// a newer one wrote says so.
const SchemaVersion = 1

// ErrNewerSchema is returned (wrapped) when a record was written by a
// newer graylane than this one.
var ErrNewerSchema = errors.New("record written by a newer graylane")

// CheckSchema returns an error wrapping ErrNewerSchema when v is newer
// than SchemaVersion. Records without the field (0) are read as version 1.
func CheckSchema(what string, v int) error {
	if v > SchemaVersion {
		return fmt.Errorf("%s has schema version %d but this graylane reads up to %d: upgrade graylane (or restore a backup taken before the upgrade): %w", what, v, SchemaVersion, ErrNewerSchema)
	}
	return nil
}

// decode unmarshals a record and checks its schema version.
func decode(what string, b []byte, v any, schema func() int) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return CheckSchema(what, schema())
}
