package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
)

// releasingRecord is a record in the middle of a canary, as a pass writes
// it: the spec's JSON, and a revision log holding the spec's text and the
// open revision with its diff.
func releasingRecord(t testing.TB) []byte {
	t.Helper()
	text := strings.Repeat("strategy:\n  type: canary\n  steps: [{setWeight: 20}, {pause: {duration: 30s}}]\n", 12)
	open := &records.Revision{Schema: records.SchemaVersion, App: "shop", Number: 7, Kind: records.KindRelease, Version: "v7",
		Identity: "v7", SpecDigest: "0123456789abcdef", Spec: text, SpecDiff: "-version: v6\n+version: v7\n" + text, Strategy: "canary"}
	rec := Record{
		Spec:         json.RawMessage(`{"app":"shop","version":"v7","replicas":4,"strategy":{"type":"canary","steps":[{"setWeight":20}]},"backend":{"type":"webhook"}}`),
		SpecRevision: 42,
		Status:       rollout.Status{Phase: rollout.Progressing, StableVersion: "v6", CanaryVersion: "v7", Step: 1, Weights: map[string]int{"v6": 80, "v7": 20}},
		Identity:     "v7",
		Observed:     []VersionCount{{Version: "v6", Ready: 3, Total: 3}, {Version: "v7", Ready: 1, Total: 1}},
		Revisions:    &records.Log{Schema: records.SchemaVersion, Last: 7, Open: open, Serving: 6, Spec: text, SpecDigest: "0123456789abcdef"},
		UpdatedAt:    time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	kind := RecordKind()
	if b, err = kind.Encode(b, kind.Current); err != nil {
		t.Fatal(err)
	}
	return b
}

// DecodeRecordHead reads everything DecodeRecord reads but the revision
// log, which list rows do not show.
func TestDecodeRecordHeadIsRecordWithoutLog(t *testing.T) {
	b := releasingRecord(t)
	full, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	head, err := DecodeRecordHead(b)
	if err != nil {
		t.Fatal(err)
	}
	if full.Revisions == nil || head.Revisions != nil {
		t.Fatalf("revision log: full %v, head %v; want only the full decode to have it", full.Revisions, head.Revisions)
	}
	full.Revisions = nil
	if !reflect.DeepEqual(full, head) {
		t.Fatalf("head differs beyond the log:\n full %+v\n head %+v", full, head)
	}
	if _, err := DecodeRecordHead([]byte(`{"schema": 1, "status": 7}`)); err == nil {
		t.Fatal("a malformed record decoded")
	}
}

// The apps list reads every app's record changes on every replica.
func BenchmarkDecodeRecord(b *testing.B) {
	raw := releasingRecord(b)
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRecord(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("head", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRecordHead(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
