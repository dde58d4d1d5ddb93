package process_test

import (
	"context"
	"strings"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// An instance adopted after a restart whose health checks fail is not
// reported unready at once: its health is pending (adapters.
// MetaHealthPending, so the engine holds the app) until as many checks
// have failed in a row as would take a ready instance out of traffic. Then
// it is unready, with the check's answer, and no longer pending.
func TestAdoptedHealthPendingUntilJudged(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	rel := demoRelease(t, "pend", "v1", freeAddr(t), "--fail-health")
	b1 := newBackend(t, dir)
	apply(t, b1, rel, traffic.Replicas{"v1": 1})
	started := waitInstances(t, b1, "pend", "the instance running and failing its checks", func(ins []adapters.Instance) bool {
		return len(ins) == 1 && ins[0].Meta["pid"] != "" && strings.Contains(ins[0].Message, "503")
	})
	for _, in := range started {
		if in.Meta[adapters.MetaHealthPending] != "" {
			t.Fatalf("an instance this backend started is reported pending: %+v", in)
		}
	}
	orig := pids(t, started)
	killAtEnd(t, orig)
	b1.Close()

	cfg := testConfig(t, dir)
	cfg.FailureThreshold = 8 // long enough to see the pending state
	b2 := startBackend(t, cfg)
	ins, err := b2.Observe(context.Background(), "pend")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Ready || ins[0].Meta["adopted"] != "true" || ins[0].Meta[adapters.MetaHealthPending] == "" {
		t.Fatalf("right after the restart: %s %v; want the adopted instance not ready with its health pending", adaptertest.Describe(ins), ins)
	}
	judged := waitInstances(t, b2, "pend", "the adopted instance judged unready", func(ins []adapters.Instance) bool {
		return len(ins) == 1 && !ins[0].Ready && ins[0].Meta[adapters.MetaHealthPending] == ""
	})
	if got := pids(t, judged); got["pend-v1-0"] != orig["pend-v1-0"] {
		t.Fatalf("pid %d after the restart, want the adopted %d", got["pend-v1-0"], orig["pend-v1-0"])
	}
	if !strings.Contains(judged[0].Message, "503") {
		t.Fatalf("judged unready with message %q; want the health check's answer", judged[0].Message)
	}
}
