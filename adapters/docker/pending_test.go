package docker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/docker"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// A container adopted after a restart whose graylane probes fail is not
// reported unready at once: its health is pending (adapters.
// MetaHealthPending, so the engine holds the app) until as many probes
// have failed in a row as would take a ready container out of traffic.
// Then it is unready, with the probe's answer, and no longer pending.
func TestAdoptedHealthPendingUntilJudged(t *testing.T) {
	testenv.IntegrationTest(t)
	e := engine(t)
	const app = "pend"
	removeApp(t, e, app)
	rel := release(t, app, "v1", e.Host, "")
	rel.Backend.Docker.Command = append(rel.Backend.Docker.Command, "--fail-health")
	b1 := newBackend(t, e)
	apply(t, b1, rel, traffic.Replicas{"v1": 1})
	started := waitFor(t, b1, app, "the container running and failing its probes", func(ins []adapters.Instance) bool {
		return len(ins) == 1 && ins[0].Meta[docker.MetaState] == "running" && strings.Contains(ins[0].Message, "503")
	})
	if started[0].Meta[adapters.MetaHealthPending] != "" {
		t.Fatalf("a container this backend started is reported pending: %+v", started[0])
	}
	b1.Close() // the container keeps running

	b2 := newBackend(t, e, func(c *docker.Config) {
		c.FailureThreshold = 8 // long enough to see the pending state
		c.Releases = func(context.Context, string) (*spec.Release, error) { return rel, nil }
	})
	ins, err := b2.Observe(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Ready || ins[0].Meta[docker.MetaAdopted] != "true" || ins[0].Meta[adapters.MetaHealthPending] == "" {
		t.Fatalf("right after the restart: %s %v; want the adopted container not ready with its health pending", adaptertest.Describe(ins), ins)
	}
	judged := waitFor(t, b2, app, "the adopted container judged unready", func(ins []adapters.Instance) bool {
		return len(ins) == 1 && !ins[0].Ready && ins[0].Meta[adapters.MetaHealthPending] == ""
	})
	if judged[0].Meta[docker.MetaContainer] != started[0].Meta[docker.MetaContainer] || !strings.Contains(judged[0].Message, "503") {
		t.Fatalf("judged: %+v; want the same container, unready with the probe's answer", judged[0])
	}
}
