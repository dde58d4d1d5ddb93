package ssh_test

import (
	"fmt"

	"github.com/graylane/graylane/adapters/ssh"
	"github.com/graylane/graylane/traffic"
)

// A canary step on four hosts moves the canary-tagged host first; the full
// rollout then moves the rest, one batch of maxUnavailable hosts at a time.
func ExamplePlanMoves() {
	hosts := []ssh.HostState{
		{Name: "web1", Version: "v1"},
		{Name: "web2", Version: "v1"},
		{Name: "web3", Version: "v1", Canary: true},
		{Name: "web4", Version: "v1"},
	}
	for _, m := range ssh.PlanMoves(hosts, traffic.Replicas{"v1": 3, "v2": 1}, "v2") {
		fmt.Printf("canary step: %s %s -> %s\n", m.Host, m.From, m.To)
	}
	hosts[2].Version = "v2"
	moves := ssh.PlanMoves(hosts, traffic.Replicas{"v2": 4}, "v2")
	for i, batch := range ssh.Batches(moves, "v2", 2) {
		for _, m := range batch {
			fmt.Printf("batch %d: %s %s -> %s\n", i, m.Host, m.From, m.To)
		}
	}
	// Output:
	// canary step: web3 v1 -> v2
	// batch 0: web1 v1 -> v2
	// batch 0: web2 v1 -> v2
	// batch 1: web4 v1 -> v2
}
