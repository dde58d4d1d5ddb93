package upgrade

import (
	"context"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Report is what Inspect finds.
type Report struct {
	Members []Member
	// Older are graylanes released before schema versions (election
	// candidates without a member record).
	Older   []string
	Storage Storage
}

// Inspect reads the members and storage versions under prefix, for the
// CLI and tests; presence is as Config.Presence.
func Inspect(ctx context.Context, kv clientv3.KV, prefix string, presence []string) (Report, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s, err := read(ctx, kv, prefix, presence)
	if err != nil {
		return Report{}, err
	}
	return Report{Members: s.members, Older: s.older, Storage: s.storage}, nil
}
