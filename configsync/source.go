package configsync

import (
	"context"
	"errors"
)

// Sentinel errors. Implementations wrap them with %w and name the centre and
// the app.
var (
	// ErrNotFound: the centre holds no document for the app.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a compare-and-swap write lost: the document changed since
	// the version the caller read.
	ErrConflict = errors.New("version conflict")
	// ErrUnavailable: the centre cannot be reached; retry later.
	ErrUnavailable = errors.New("config centre unavailable")
	// ErrUnsupported: the centre cannot do what was asked (for example a
	// read-only source asked to write).
	ErrUnsupported = errors.New("not supported by this config centre")
)

// Absent is passed as Writer.Put's expect argument to require that no
// document exists yet.
const Absent = "<absent>"

// Entry is one app's release document as a centre holds it.
type Entry struct {
	// App is the app the document belongs to (derived from the key/dataId).
	App string
	// Data is the raw document (YAML or JSON).
	Data []byte
	// Version identifies this content in the centre and is what Writer.Put
	// compares against: etcd's mod revision, Nacos' MD5, Apollo's release key.
	Version string
	// Revision orders changes seen from one Source. For etcd it is the
	// store revision; centres without a global revision count locally.
	Revision int64
}

// EventType is what happened to an app's document.
type EventType int

const (
	// Put: the document was created or changed.
	Put EventType = iota
	// Delete: the document was removed.
	Delete
)

func (t EventType) String() string {
	if t == Delete {
		return "DELETE"
	}
	return "PUT"
}

// Event is one change to one app's document.
type Event struct {
	Type  EventType
	Entry Entry
}

// WatchResponse is one batch from Source.Watch.
type WatchResponse struct {
	// Events, in the order they happened. For one app, the last event is
	// its current state.
	Events []Event
	// Reset means Events is a complete listing of every document: an app
	// not listed has been deleted. Watch sends a Reset first (unless it can
	// resume exactly from the requested revision) and again whenever it had
	// to re-read everything (etcd compaction, a reconnect to a centre that
	// cannot replay history).
	Reset bool
	// Revision is the point to resume from after this response.
	Revision int64
	// Err reports a problem that does not end the watch, such as the centre
	// being unreachable (wrapping ErrUnavailable). The watch keeps trying;
	// the next successful response has Err == nil.
	Err error
}

// Source reads and watches release documents in one config centre.
//
// Contract for every implementation (checked by configsync/sourcetest):
//   - Get and List never block past ctx; a centre that cannot be reached
//     yields an error wrapping ErrUnavailable.
//   - Watch never returns an error: it returns a channel that delivers
//     responses until ctx ends, and is then closed.
//   - Watch never delivers the same content for the same app twice in a
//     row (de-duplication), never delivers an older state after a newer one
//     for an app, and after a centre restart or reconnect re-reads and
//     delivers only what actually changed.
//   - Documents are passed through untouched: a malformed document is
//     delivered like any other so the consumer can report it.
type Source interface {
	// Name names the centre for logs and status: "etcd", "nacos", "apollo".
	Name() string
	// Get returns one app's document, or an error wrapping ErrNotFound.
	Get(ctx context.Context, app string) (Entry, error)
	// List returns every app's document and the revision they were read at.
	List(ctx context.Context) ([]Entry, int64, error)
	// Watch streams changes after the given revision (0: start with a full
	// listing).
	Watch(ctx context.Context, afterRevision int64) <-chan WatchResponse
	// Close releases the source's connections. It is idempotent.
	Close() error
}

// Writer publishes release documents to a centre. It is optional: a Source
// that also implements Writer lets graylane's API and CLI write releases to
// the centre, which stays the source of truth.
type Writer interface {
	// Put stores data as app's document. expect is "" for an unconditional
	// write, Absent to require that no document exists, or the Version read
	// earlier: if the document changed since, Put returns an error wrapping
	// ErrConflict and writes nothing. Centres without native
	// compare-and-swap document how close they come.
	Put(ctx context.Context, app string, data []byte, expect string) (Entry, error)
	// Delete removes app's document (same expect rules). Deleting a missing
	// document is not an error.
	Delete(ctx context.Context, app string, expect string) error
}

// HealthChecker is optional: a Source that can tell whether its centre is
// reachable right now, for /readyz and app status.
type HealthChecker interface {
	Healthy(ctx context.Context) error
}
