// Package schema versions the records graylane persists — in etcd and in
// files on disk — and migrates them between versions. It is pure: no I/O,
// no clock.
//
// Every record is a JSON object carrying its version in the member
// "schema" (Field): a number, or for kinds with a Tag a string
// "<tag>/v<n>". A Kind describes one type of record: the version this
// graylane writes (Current), the version a record without the field has
// (Unversioned: 0 for the records graylane kept before versions existed),
// and one Step per version change with an Up and a Down conversion.
//
//	Decode   any version up to Current → Current (refuses newer ones with an
//	         error wrapping ErrNewer instead of misreading them)
//	Encode   a Current record → the version the cluster allows (Down steps)
//	Convert  any readable version → a given one (the migrator's rewrite)
//
// Rules for a new step (docs/upgrades.md): bump Current, append a Step
// whose Up turns the previous version into the new one and whose Down
// turns it back (the newer graylane writes the older version while older
// graylanes still run), and add a table test for the step. Adding an
// optional field an older graylane may drop is not a step; renaming,
// retyping or changing the meaning of a field is.
//
// Entry points: Kind.Decode, Kind.Encode, Kind.Convert.
package schema
