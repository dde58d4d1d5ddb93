package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/testsupport/testenv"
)

// DocumentsHarness is what RunDocuments needs: a Documents implementation
// and a way to make fresh locations in its centre.
type DocumentsHarness struct {
	Docs configsync.Documents
	// Location returns a fresh location (unique per call) named after name.
	Location func(name string) configsync.Location
	// Eventually bounds waiting for a write to become readable (centres
	// whose reads lag their writes, like Polaris' ~1 s cache).
	Eventually time.Duration
}

// RunDocuments is the conformance suite for configsync.Documents: read of a
// missing document, write and read back, compare-and-swap, Absent, delete
// (and delete of a missing document).
func RunDocuments(t *testing.T, newHarness func(t *testing.T) *DocumentsHarness) {
	t.Run("ReadMissing", func(t *testing.T) {
		h := newHarness(t)
		_, err := h.Docs.Read(ctx(t), h.Location("missing"))
		if !errors.Is(err, configsync.ErrNotFound) {
			t.Fatalf("Read of a missing document: %v, want ErrNotFound", err)
		}
	})
	t.Run("WriteReadBack", func(t *testing.T) {
		h := newHarness(t)
		loc := h.Location("rw")
		d, err := h.Docs.Write(ctx(t), loc, []byte("a: 1\n"), "")
		if err != nil || d.Version == "" {
			t.Fatalf("Write: %+v %v", d, err)
		}
		got := h.waitData(t, loc, []byte("a: 1\n"))
		if got.Version == "" {
			t.Fatal("Read returned no version")
		}
		if _, err := h.Docs.Write(ctx(t), loc, []byte("a: 2\n"), ""); err != nil {
			t.Fatal(err)
		}
		h.waitData(t, loc, []byte("a: 2\n"))
	})
	t.Run("CompareAndSwap", func(t *testing.T) {
		h := newHarness(t)
		loc := h.Location("cas")
		first, err := h.Docs.Write(ctx(t), loc, []byte("v: 1\n"), configsync.Absent)
		if err != nil {
			t.Fatalf("Write Absent on a fresh location: %v", err)
		}
		cur := h.waitData(t, loc, []byte("v: 1\n"))
		if _, err := h.Docs.Write(ctx(t), loc, []byte("v: x\n"), configsync.Absent); !errors.Is(err, configsync.ErrConflict) {
			t.Fatalf("Write Absent over an existing document: %v, want ErrConflict", err)
		}
		second, err := h.Docs.Write(ctx(t), loc, []byte("v: 2\n"), cur.Version)
		if err != nil {
			t.Fatalf("Write with the current version %s (first write said %s): %v", cur.Version, first.Version, err)
		}
		h.waitData(t, loc, []byte("v: 2\n"))
		if _, err := h.Docs.Write(ctx(t), loc, []byte("v: 3\n"), cur.Version); !errors.Is(err, configsync.ErrConflict) {
			t.Fatalf("Write with a stale version: %v, want ErrConflict", err)
		}
		if got := h.waitData(t, loc, []byte("v: 2\n")); got.Version != second.Version && second.Version != "" && got.Version == cur.Version {
			t.Fatalf("version did not move on: %s", got.Version)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		h := newHarness(t)
		loc := h.Location("del")
		if _, err := h.Docs.Write(ctx(t), loc, []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
		h.waitData(t, loc, []byte("x"))
		if err := h.Docs.Delete(ctx(t), loc, ""); err != nil {
			t.Fatal(err)
		}
		h.waitGone(t, loc)
		if err := h.Docs.Delete(ctx(t), loc, ""); err != nil {
			t.Fatalf("Delete of a missing document: %v, want nil", err)
		}
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func (h *DocumentsHarness) within() time.Duration {
	if h.Eventually > 0 {
		return h.Eventually
	}
	return 10 * time.Second
}

func (h *DocumentsHarness) waitData(t *testing.T, loc configsync.Location, want []byte) configsync.Doc {
	t.Helper()
	var d configsync.Doc
	testenv.Eventually(t, h.within(), fmt.Sprintf("%s reads back %q", loc, want), func() error {
		var err error
		d, err = h.Docs.Read(ctx(t), loc)
		return testenv.Check(err == nil && bytes.Equal(d.Data, want), "read %q, %v", d.Data, err)
	})
	return d
}

func (h *DocumentsHarness) waitGone(t *testing.T, loc configsync.Location) {
	t.Helper()
	testenv.Eventually(t, h.within(), fmt.Sprintf("%s gone after Delete", loc), func() error {
		_, err := h.Docs.Read(ctx(t), loc)
		return testenv.Check(errors.Is(err, configsync.ErrNotFound), "still readable: %v", err)
	})
}
