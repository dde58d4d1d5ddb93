// Package audit is graylane's persistent audit log: who did what, when,
// from where, and how it ended, kept in etcd.
//
// Entry points: NewStore(StoreConfig) (Append, List, Prune: records under
// one prefix, keyed by time, written create-only, so the log is
// append-only from the API's point of view) and NewAggregator
// (unauthenticated denials counted per source address and minute, one
// record per bucket instead of one per request). The HTTP API writes a
// Record for every mutating request (server.auditRequests); the engine's
// release records add one for every release document edited in a config
// centre behind graylane's API, with the diff.
//
// Records carry a schema version (SchemaVersion); a reader refuses a
// newer one. Content is redacted before it is stored: config file
// contents never enter the log, and credential-looking values are masked
// (internal/redact).
package audit
