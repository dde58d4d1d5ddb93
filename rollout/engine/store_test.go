package engine

import (
	"encoding/json"
	"testing"
)

// A record persisted before status.fast was renamed status.rollback still
// reads as a rollback in progress, and is written back under the new name.
func TestRecordReadsLegacyFastAsRollback(t *testing.T) {
	old := []byte(`{"spec":{"app":"demo"},"status":{"phase":"Progressing","stableVersion":"v2","canaryVersion":"v1","step":0,"fast":true},"updatedAt":"2026-01-02T03:04:05Z"}`)
	var rec Record
	if err := json.Unmarshal(old, &rec); err != nil {
		t.Fatal(err)
	}
	if !rec.Status.Rollback || rec.Status.CanaryVersion != "v1" || rec.Status.StableVersion != "v2" || string(rec.Spec) != `{"app":"demo"}` {
		t.Fatalf("legacy record read as %+v", rec.Status)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Status map[string]any `json:"status"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Status["rollback"] != true || back.Status["fast"] != nil {
		t.Fatalf("rewritten status = %v, want rollback:true and no fast", back.Status)
	}
	var plain Record
	if err := json.Unmarshal([]byte(`{"status":{"phase":"Healthy","stableVersion":"v2"}}`), &plain); err != nil || plain.Status.Rollback {
		t.Fatalf("a record without the legacy field: %+v, %v", plain.Status, err)
	}
}
