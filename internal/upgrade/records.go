package upgrade

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/graylane/graylane/internal/schema"
)

// Member is what a running graylane advertises.
type Member struct {
	// ID is the graylane's id (ha.id: the value of its election key).
	ID string `json:"id"`
	// Release is its build version (e.g. v1.4.0 or a commit).
	Release string `json:"release"`
	// Reads maps each record kind it knows to the newest version it reads.
	Reads map[string]int `json:"reads"`
	// Since is when it started.
	Since time.Time `json:"since"`
}

func (m Member) String() string { return m.ID + " (" + m.Release + ")" }

// Storage is the cluster-wide record of schema versions.
type Storage struct {
	// Kinds maps a record kind to the version records are written at; a
	// kind not listed is written at its oldest version.
	Kinds map[string]int `json:"kinds,omitempty"`
	// Migrated maps a kind to the version every record of it was
	// rewritten to (at least).
	Migrated map[string]int `json:"migrated,omitempty"`
	// RaisedBy names the member that last raised a version, and RaisedAt
	// when.
	RaisedBy string    `json:"raisedBy,omitempty"`
	RaisedAt time.Time `json:"raisedAt,omitempty"`
}

// at is the version kind k is written at.
func (s Storage) at(k schema.Kind) int {
	if v, ok := s.Kinds[k.Name]; ok {
		return v
	}
	return k.Oldest()
}

// migrated is the version every record of k has.
func (s Storage) migrated(k schema.Kind) int {
	if v, ok := s.Migrated[k.Name]; ok {
		return v
	}
	return k.Oldest()
}

// MemberKind is the schema of Member records.
func MemberKind() schema.Kind {
	return schema.Kind{Name: "upgrade-member", What: "member record", Current: 1, Unversioned: 1}
}

// StorageKind is the schema of the Storage record.
func StorageKind() schema.Kind {
	return schema.Kind{Name: "upgrade-storage", What: "schema storage record", Current: 1, Unversioned: 1}
}

func encode(k schema.Kind, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return k.Encode(b, k.Current)
}

func decodeStorage(b []byte) (Storage, error) {
	var s Storage
	cur, _, err := StorageKind().Decode(b)
	if err == nil {
		err = json.Unmarshal(cur, &s)
	}
	if err != nil {
		return Storage{}, fmt.Errorf("schema storage record: %w", err)
	}
	return s, nil
}

func decodeMember(b []byte) (Member, error) {
	var m Member
	cur, _, err := MemberKind().Decode(b)
	if err == nil {
		err = json.Unmarshal(cur, &m)
	}
	return m, err
}
