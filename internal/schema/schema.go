package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Field is the JSON member of a record that carries its schema version.
const Field = "schema"

// Missing as a Kind's Unversioned refuses records without the Field.
const Missing = -1

// ErrNewer is wrapped by the errors for records written by a newer
// graylane than this one: such a record is refused, never misread or
// written over.
var ErrNewer = errors.New("record written by a newer graylane")

// ErrTooOld is wrapped by the errors for records older than the oldest
// version this graylane can migrate.
var ErrTooOld = errors.New("record too old to migrate")

// ErrInvalid is wrapped by the errors for records that are not a JSON
// object or whose version field is malformed.
var ErrInvalid = errors.New("invalid record")

// Object is a record being migrated: its top-level members, values kept
// as written.
type Object map[string]json.RawMessage

// Step changes a kind from one version to the next.
type Step struct {
	// Change says what the step changes (docs, logs).
	Change string
	// Up rewrites a record of the older version into the newer one; nil
	// when only the version number changes. The Field is set by the
	// caller.
	Up func(Object) error
	// Down rewrites a record of the newer version into the older one, for
	// a newer graylane writing while older ones still run; nil when only
	// the version number changes.
	Down func(Object) error
}

// Kind is one type of persisted record.
type Kind struct {
	// Name identifies the kind in storage versions and member records
	// ("rollout-record"); What names it in messages ("rollout record").
	Name, What string
	// Current is the version this graylane writes and the newest it reads.
	Current int
	// Unversioned is the version of a record without the Field: 0 for
	// kinds graylane kept before records were versioned, the first version
	// for kinds born versioned, Missing to refuse such records.
	Unversioned int
	// Steps[i] changes version Oldest()+i into Oldest()+i+1.
	Steps []Step
	// Tag, if set, makes the Field a string "<Tag>/v<n>" instead of a
	// number (formats that carried such a string before this package).
	Tag string
}

// Oldest is the oldest version this graylane reads (and migrates).
func (k Kind) Oldest() int { return k.Current - len(k.Steps) }

// Validate checks the kind's definition (a programming error, for tests).
func (k Kind) Validate() error {
	switch {
	case k.Name == "" || k.What == "":
		return errors.New("schema kind: Name and What are required")
	case k.Current < 0 || k.Oldest() < 0:
		return fmt.Errorf("schema kind %s: current %d with %d steps starts below 0", k.Name, k.Current, len(k.Steps))
	case k.Unversioned != Missing && (k.Unversioned < k.Oldest() || k.Unversioned > k.Current):
		return fmt.Errorf("schema kind %s: unversioned records are version %d, outside %d..%d", k.Name, k.Unversioned, k.Oldest(), k.Current)
	}
	return nil
}

// NewerError is the error for a record newer than this graylane reads.
type NewerError struct {
	Kind    string // the kind's What
	Version int    // the record's version
	Reads   int    // the newest version this graylane reads
}

func (e *NewerError) Error() string {
	return fmt.Sprintf("%s has schema version %d but this graylane reads up to %d: it was written by a newer graylane; run that release or a newer one (downgrading past a schema change is not supported, see docs/upgrades.md)", e.Kind, e.Version, e.Reads)
}

// Is makes errors.Is(err, ErrNewer) hold.
func (e *NewerError) Is(target error) bool { return target == ErrNewer }

// Version returns the version of raw: its Field, or Unversioned when it
// has none.
func (k Kind) Version(raw []byte) (int, error) {
	var env struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return 0, fmt.Errorf("%s: %w: %v", k.What, ErrInvalid, err)
	}
	return k.parse(env.Schema)
}

func (k Kind) parse(v json.RawMessage) (int, error) {
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		if k.Unversioned == Missing {
			return 0, fmt.Errorf("%s: %w: no %q member", k.What, ErrInvalid, Field)
		}
		return k.Unversioned, nil
	}
	if k.Tag != "" {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, fmt.Errorf("%s: %w: %s is %s, not a string", k.What, ErrInvalid, Field, v)
		}
		n, ok := strings.CutPrefix(s, k.Tag+"/v")
		ver, err := strconv.Atoi(n)
		if !ok || err != nil || ver < 0 {
			return 0, fmt.Errorf("%s: %w: %s %q is not %s/v<n>", k.What, ErrInvalid, Field, s, k.Tag)
		}
		return ver, nil
	}
	var n int
	if err := json.Unmarshal(v, &n); err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %w: %s is %s, not a version number", k.What, ErrInvalid, Field, v)
	}
	return n, nil
}

// check refuses versions this graylane cannot read.
func (k Kind) check(v int) error {
	if v > k.Current {
		return &NewerError{Kind: k.What, Version: v, Reads: k.Current}
	}
	if v < k.Oldest() {
		return fmt.Errorf("%s has schema version %d but this graylane migrates from %d on: upgrade through an intermediate release first: %w", k.What, v, k.Oldest(), ErrTooOld)
	}
	return nil
}

// field is the Field's value for version v.
func (k Kind) field(v int) json.RawMessage {
	if k.Tag != "" {
		b, _ := json.Marshal(fmt.Sprintf("%s/v%d", k.Tag, v))
		return b
	}
	return json.RawMessage(strconv.Itoa(v))
}

// Decode returns raw migrated to Current (with the Field set to Current)
// and the version it had. A record already at Current is returned as is.
func (k Kind) Decode(raw []byte) (out []byte, from int, err error) {
	from, err = k.Version(raw)
	if err != nil {
		return nil, 0, err
	}
	if err := k.check(from); err != nil {
		return nil, from, err
	}
	if from == k.Current {
		return raw, from, nil
	}
	out, err = k.convert(raw, from, k.Current)
	return out, from, err
}

// Encode returns cur — a record of version Current, with or without the
// Field — written at version at (≤ Current): the Down steps applied and the
// Field set; at 0 the Field is left out, as graylane wrote it before
// records carried versions. It refuses at > Current with an error
// wrapping ErrNewer: this graylane cannot write a version it does not know.
func (k Kind) Encode(cur []byte, at int) ([]byte, error) {
	if err := k.check(at); err != nil {
		return nil, err
	}
	return k.convert(cur, k.Current, at)
}

// Convert returns raw (of any version this graylane reads) at version to,
// and the version it had; out is raw itself when nothing changes.
func (k Kind) Convert(raw []byte, to int) (out []byte, from int, err error) {
	from, err = k.Version(raw)
	if err != nil {
		return nil, 0, err
	}
	if err := k.check(from); err != nil {
		return nil, from, err
	}
	if err := k.check(to); err != nil {
		return nil, from, err
	}
	if from == to {
		return raw, from, nil
	}
	out, err = k.convert(raw, from, to)
	return out, from, err
}

// convert applies the steps between from and to and sets the Field.
func (k Kind) convert(raw []byte, from, to int) ([]byte, error) {
	var o Object
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, fmt.Errorf("%s: %w: not a JSON object", k.What, ErrInvalid)
	}
	for v := from; v < to; v++ {
		if st := k.Steps[v-k.Oldest()]; st.Up != nil {
			if err := st.Up(o); err != nil {
				return nil, fmt.Errorf("migrate %s from schema %d to %d: %w", k.What, v, v+1, err)
			}
		}
	}
	for v := from; v > to; v-- {
		if st := k.Steps[v-1-k.Oldest()]; st.Down != nil {
			if err := st.Down(o); err != nil {
				return nil, fmt.Errorf("write %s at schema %d (from %d): %w", k.What, v-1, v, err)
			}
		}
	}
	if to == 0 && k.Tag == "" {
		delete(o, Field)
	} else {
		o[Field] = k.field(to)
	}
	return json.Marshal(o)
}

// Member returns the object under name in o (nil, nil when absent or null),
// for steps that change nested records.
func (o Object) Member(name string) (Object, error) {
	v, ok := o[name]
	if !ok || bytes.Equal(v, []byte("null")) {
		return nil, nil
	}
	var sub Object
	if err := json.Unmarshal(v, &sub); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", name, err)
	}
	return sub, nil
}

// Set stores v (marshalled) under name.
func (o Object) Set(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	o[name] = b
	return nil
}
