package upgrade

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/graylane/graylane/internal/schema"
)

// View is what Decide looks at: a consistent snapshot of the cluster.
type View struct {
	// Kinds are the record kinds this graylane reads and writes.
	Kinds []schema.Kind
	// Members are the live graylanes that advertise themselves (this one
	// included).
	Members []Member
	// Older are the ids of live graylanes that advertise nothing: released
	// before records carried versions.
	Older []string
	// Storage is the stored versions.
	Storage Storage
	// Hold keeps every version where it is (upgrade.migration: hold).
	Hold bool
}

// Decision is what Decide wants done.
type Decision struct {
	// Refuse is set when the storage holds a version this graylane does
	// not read: it must not read or write those records.
	Refuse error
	// Raise maps kinds to the version their storage version is raised to.
	Raise map[string]int
	// Migrate maps kinds to the version every record must be rewritten to
	// (after Raise).
	Migrate map[string]int
	// Waiting says, per kind, why its version is not raised yet.
	Waiting []string
}

// Decide works out, for each kind, whether every live member reads a newer
// version than the stored one (raise it to the newest version all of them
// read), and whether records remain to be migrated. Members that do not
// list a kind do not read it and do not hold it back; older graylanes hold
// back the kinds that existed before versions (Unversioned 0).
//
// Example: this graylane reads rollout-record 1; member b (same release)
// reads 1; an older graylane "a" campaigns without a member record. The
// stored version stays 0 and Waiting names "a". Once "a" is gone the
// decision is Raise{rollout-record: 1}, Migrate{rollout-record: 1}.
func Decide(v View) Decision {
	d := Decision{Raise: map[string]int{}, Migrate: map[string]int{}}
	var refuse []error
	for _, k := range v.Kinds {
		stored := v.Storage.at(k)
		if stored > k.Current {
			by := ""
			if v.Storage.RaisedBy != "" {
				by = " (raised by " + v.Storage.RaisedBy + ")"
			}
			refuse = append(refuse, fmt.Errorf("etcd keeps %s records at schema version %d%s: %w", k.Name, stored, by,
				&schema.NewerError{Kind: k.What, Version: stored, Reads: k.Current}))
			continue
		}
		target := k.Current
		var behind []string
		for _, m := range v.Members {
			r, ok := m.Reads[k.Name]
			if !ok {
				continue // does not know the kind: never reads it
			}
			if r < k.Current {
				behind = append(behind, fmt.Sprintf("%s reads up to %d", m, r))
			}
			target = min(target, r)
		}
		if k.Unversioned == 0 && len(v.Older) > 0 {
			target = min(target, 0)
			for _, id := range v.Older {
				behind = append(behind, id+" (a graylane released before schema versions) reads 0")
			}
		}
		slices.Sort(behind)
		switch {
		case target > stored && v.Hold:
			d.Waiting = append(d.Waiting, fmt.Sprintf("%s: written at schema %d (migration to %d held: upgrade.migration is hold)", k.Name, stored, target))
		case target > stored:
			d.Raise[k.Name] = target
			stored = target
		case stored < k.Current:
			d.Waiting = append(d.Waiting, fmt.Sprintf("%s: written at schema %d until every graylane reads %d: %s", k.Name, stored, k.Current, strings.Join(behind, ", ")))
		}
		if stored > v.Storage.migrated(k) {
			d.Migrate[k.Name] = stored
		}
	}
	d.Refuse = errors.Join(refuse...)
	if d.Refuse != nil {
		// a newer graylane owns this etcd: one that cannot read all of it
		// raises and migrates nothing (it would sign the storage record as
		// the raiser of versions it does not read)
		d.Raise, d.Migrate = map[string]int{}, map[string]int{}
	}
	return d
}
