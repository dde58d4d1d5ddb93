package ssh

import (
	"sort"

	"github.com/graylane/graylane/traffic"
)

// HostState is what the planner knows of one host.
type HostState struct {
	// Name identifies the host.
	Name string
	// Version is where the host's current link points ("" = no current).
	Version string
	// Canary hosts move to the target version before any other.
	Canary bool
}

// Move switches one host from one version to another. To == "" stops the
// host (its current link is removed).
type Move struct {
	Host     string
	From, To string
	Canary   bool
}

// PlanMoves decides which hosts switch version so that, afterwards, the
// number of hosts per version equals want. It is pure: hosts in, moves out.
//
// Hosts are a fixed pool, so a version can only gain hosts another gives up:
//
//  1. A version with more hosts than wanted (absent from want = 0 wanted)
//     frees its surplus; hosts with no version are free from the start.
//     Among a version's hosts, canary hosts are freed first, then the others
//     in spec order, so canary hosts are always the first to change.
//  2. Free hosts fill the target's deficit first, then the other versions'
//     (sorted by name), idle hosts before canary ones before the rest.
//  3. If the target is still short because the wanted counts exceed the
//     hosts (the engine asked for a surge, which fixed hosts cannot give),
//     hosts are taken from the other version with the most hosts: the surge
//     becomes a replacement, bounded by the batch size when applied.
//  4. Free hosts left over are stopped.
//
// Worked example: hosts a (canary), b, c, d all on v1; want {v1:3, v2:1},
// target v2: v1 frees one host, the canary a, which moves to v2. Then want
// {v2:4}: v1 frees b, c, d, all move to v2.
func PlanMoves(hosts []HostState, want traffic.Replicas, target string) []Move {
	count := map[string]int{}
	for _, h := range hosts {
		if h.Version != "" {
			count[h.Version]++
		}
	}
	// Order of preference for freeing: canary first, then spec order.
	order := make([]int, len(hosts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return hosts[order[a]].Canary && !hosts[order[b]].Canary })

	var idle, freed []int
	surplus := map[string]int{}
	for v, n := range count {
		if n > want[v] {
			surplus[v] = n - want[v]
		}
	}
	for _, i := range order {
		h := hosts[i]
		switch {
		case h.Version == "":
			idle = append(idle, i)
		case surplus[h.Version] > 0:
			surplus[h.Version]--
			freed = append(freed, i)
		}
	}
	pool := append(idle, freed...)
	sort.SliceStable(pool, func(a, b int) bool {
		ra, rb := rank(hosts[pool[a]]), rank(hosts[pool[b]])
		return ra < rb
	})

	deficit := map[string]int{}
	var others []string
	for v, n := range want {
		if n > count[v] {
			deficit[v] = n - count[v]
			if v != target {
				others = append(others, v)
			}
		}
	}
	sort.Strings(others)
	var moves []Move
	assign := func(i int, v string) {
		moves = append(moves, Move{Host: hosts[i].Name, From: hosts[i].Version, To: v, Canary: hosts[i].Canary})
	}
	next := 0
	for _, v := range append([]string{target}, others...) {
		for deficit[v] > 0 && next < len(pool) {
			assign(pool[next], v)
			next++
			deficit[v]--
		}
	}
	// Surge on fixed hosts: take from the largest other version.
	if deficit[target] > 0 {
		taken := map[int]bool{}
		for _, i := range pool {
			taken[i] = true
		}
		for deficit[target] > 0 {
			donor, most := "", 0
			for v, n := range count {
				if v == target || n == 0 {
					continue
				}
				if n > most || (n == most && v < donor) {
					donor, most = v, n
				}
			}
			if donor == "" {
				break
			}
			picked := false
			for _, i := range order {
				if !taken[i] && hosts[i].Version == donor {
					taken[i] = true
					assign(i, target)
					count[donor]--
					deficit[target]--
					picked = true
					break
				}
			}
			if !picked {
				count[donor] = 0
			}
		}
	}
	for ; next < len(pool); next++ {
		if hosts[pool[next]].Version != "" {
			assign(pool[next], "")
		}
	}
	return moves
}

// rank orders free hosts: idle first, then canary, then the rest.
func rank(h HostState) int {
	switch {
	case h.Version == "":
		return 0
	case h.Canary:
		return 1
	}
	return 2
}

// Batches groups moves for a rolling switch: moves of canary hosts to the
// target come first, then the other moves to a version, then stops; each
// group is cut into batches of at most size hosts (size < 1 counts as 1).
// A batch starts only after every host of the previous one is healthy.
func Batches(moves []Move, target string, size int) [][]Move {
	if size < 1 {
		size = 1
	}
	var canary, rest, stops []Move
	for _, m := range moves {
		switch {
		case m.To == "":
			stops = append(stops, m)
		case m.Canary && m.To == target:
			canary = append(canary, m)
		default:
			rest = append(rest, m)
		}
	}
	var out [][]Move
	for _, group := range [][]Move{canary, rest, stops} {
		for len(group) > 0 {
			n := min(size, len(group))
			out = append(out, group[:n])
			group = group[n:]
		}
	}
	return out
}

// Prune returns the release directories to delete from a host: releases
// lists them most recently used first; the first keep stay, and so do the
// protected ones (the current and the previous version).
func Prune(releases []string, keep int, protect ...string) []string {
	var out []string
	for i, r := range releases {
		if i < keep {
			continue
		}
		skip := false
		for _, p := range protect {
			if r == p {
				skip = true
			}
		}
		if !skip {
			out = append(out, r)
		}
	}
	return out
}
