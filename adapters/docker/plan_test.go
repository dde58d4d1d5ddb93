package docker

import (
	"slices"
	"testing"
	"time"

	"github.com/graylane/graylane/traffic"
)

func TestPlan(t *testing.T) {
	now := time.Unix(1000, 0)
	old := now.Add(-time.Hour)
	c := func(id, host, v string, n int, state string, ready bool) cview {
		return cview{ID: id, Host: host, Key: slotKey{v, n}, State: state, Ready: ready, Created: old}
	}
	young := func(cv cview) cview { cv.Created = now.Add(-time.Second); return cv }
	stopping := func(cv cview) cview { cv.Stopping = true; return cv }
	failing := func(cv cview) cview { cv.Failing = true; return cv }
	cases := []struct {
		name string
		in   planInput
		want []string
		wait map[slotKey]string
	}{
		{name: "unknown desired state does nothing",
			in: planInput{Hosts: []string{"a"}, Containers: []cview{c("1", "a", "v1", 0, "exited", false)}}},
		{name: "scale up spreads slots over hosts",
			in:   planInput{Want: traffic.Replicas{"v1": 3}, Hosts: []string{"a", "b"}},
			want: []string{"create v1/0 on a", "create v1/1 on b", "create v1/2 on a"}},
		{name: "converged: nothing to do",
			in: planInput{Want: traffic.Replicas{"v1": 2}, Hosts: []string{"a", "b"},
				Containers: []cview{c("1", "a", "v1", 0, "running", true), c("2", "b", "v1", 1, "running", true)}}},
		{name: "start-first: the old version waits for the new one to be ready",
			in: planInput{Want: traffic.Replicas{"v2": 1}, Hosts: []string{"a"},
				Containers: []cview{c("1", "a", "v1", 0, "running", true)}},
			want: []string{"create v2/0 on a"}},
		{name: "start-first: a starting container holds surplus back",
			in: planInput{Want: traffic.Replicas{"v2": 1}, Hosts: []string{"a"},
				Containers: []cview{c("1", "a", "v1", 0, "running", true), young(c("2", "a", "v2", 0, "running", false))}}},
		{name: "start-first: once ready, surplus is stopped",
			in: planInput{Want: traffic.Replicas{"v2": 1}, Hosts: []string{"a"},
				Containers: []cview{c("1", "a", "v1", 0, "running", true), c("2", "a", "v2", 0, "running", true)}},
			want: []string{"stop v1/0 (1) on a"}},
		{name: "start-first: a failing container does not hold surplus back",
			in: planInput{Want: traffic.Replicas{"v2": 1}, Hosts: []string{"a"},
				Containers: []cview{c("1", "a", "v1", 0, "running", true), failing(young(c("2", "a", "v2", 0, "restarting", false)))}},
			want: []string{"stop v1/0 (1) on a"}},
		{name: "start-first: a container starting for longer than StartTimeout does not hold surplus back",
			in: planInput{Want: traffic.Replicas{"v2": 1}, Hosts: []string{"a"}, StartTimeout: time.Minute,
				Containers: []cview{c("1", "a", "v1", 0, "running", true), c("2", "a", "v2", 0, "running", false)}},
			want: []string{"stop v1/0 (1) on a"}},
		{name: "stop-first: surplus on the host goes first, creation waits",
			in: planInput{Want: traffic.Replicas{"v2": 2}, Hosts: []string{"a", "b"}, Order: "stop-first",
				Containers: []cview{c("1", "a", "v1", 0, "running", true)}},
			want: []string{"create v2/1 on b", "stop v1/0 (1) on a"},
			wait: map[slotKey]string{{"v2", 0}: "stop-first: waiting for 1 surplus container(s) on a to stop"}},
		{name: "stop-first: a stopping container still holds its host",
			in: planInput{Want: traffic.Replicas{"v2": 1}, Hosts: []string{"a"}, Order: "stop-first",
				Containers: []cview{stopping(c("1", "a", "v1", 0, "running", false))}},
			wait: map[slotKey]string{{"v2", 0}: "stop-first: waiting for 1 surplus container(s) on a to stop"}},
		{name: "exited and created containers of wanted slots are started; not-running surplus is removed at once",
			in: planInput{Want: traffic.Replicas{"v1": 2}, Hosts: []string{"a"},
				Containers: []cview{c("1", "a", "v1", 0, "exited", false), c("2", "a", "v1", 1, "created", false), c("3", "a", "v0", 0, "exited", false)}},
			want: []string{"start v1/0 (1) on a", "start v1/1 (2) on a", "remove v0/0 (3) on a"}},
		{name: "back-off holds a failed slot",
			in: planInput{Want: traffic.Replicas{"v1": 2}, Hosts: []string{"a"}, Now: now,
				RetryAt:     map[slotKey]time.Time{{"v1", 0}: now.Add(time.Second), {"v1", 1}: now.Add(time.Second)},
				SlotFailing: map[slotKey]bool{{"v1", 0}: true},
				Containers:  []cview{c("1", "a", "v1", 1, "exited", false)}},
			wait: map[slotKey]string{{"v1", 0}: "retrying at " + now.Add(time.Second).Format(time.RFC3339)}},
		{name: "a container on a host no longer listed is replaced on the slot's host",
			in: planInput{Want: traffic.Replicas{"v1": 1}, Hosts: []string{"b"},
				Containers: []cview{c("1", "a", "v1", 0, "running", true)}},
			want: []string{"create v1/0 on b"}},
		{name: "two containers claim a slot: the ready one stays",
			in: planInput{Want: traffic.Replicas{"v1": 1}, Hosts: []string{"a", "b"},
				Containers: []cview{c("1", "a", "v1", 0, "running", false), young(c("2", "b", "v1", 0, "running", true))}},
			want: []string{"stop v1/0 (1) on a"}},
		{name: "a dead container is removed before its slot is created again on the same host",
			in: planInput{Want: traffic.Replicas{"v1": 1}, Hosts: []string{"a"},
				Containers: []cview{c("1", "a", "v1", 0, "dead", false)}},
			want: []string{"remove v1/0 (1) on a"},
			wait: map[slotKey]string{{"v1", 0}: "waiting for the slot's previous container on a to be removed"}},
		{name: "scale to zero stops everything",
			in: planInput{Want: traffic.Replicas{}, Hosts: []string{"a"},
				Containers: []cview{c("1", "a", "v1", 0, "running", true), c("2", "a", "v2", 0, "running", true)}},
			want: []string{"stop v1/0 (1) on a", "stop v2/0 (2) on a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.Now.IsZero() {
				tc.in.Now = now
			}
			if tc.in.StartTimeout == 0 {
				tc.in.StartTimeout = 2 * time.Hour
			}
			out := plan(tc.in)
			var got []string
			for _, a := range out.Actions {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("actions:\n got %q\nwant %q", got, tc.want)
			}
			if len(out.Waiting) != len(tc.wait) {
				t.Errorf("waiting = %v, want %v", out.Waiting, tc.wait)
			}
			for k, w := range tc.wait {
				if out.Waiting[k] != w {
					t.Errorf("waiting[%s] = %q, want %q", k, out.Waiting[k], w)
				}
			}
		})
	}
}
