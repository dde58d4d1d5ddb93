package main

import "context"

// sharded measures r replicas in ha.mode shard.
func sharded(ctx context.Context, o options, dir string, r int, rep *report) error {
	return nil
}
