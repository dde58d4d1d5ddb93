// Package etcdserver runs graylane's embedded etcd: a single-member etcd
// (go.etcd.io/etcd/server/v3/embed) that holds release documents when no
// external etcd cluster is configured, and that integration tests start in
// process.
//
// Entry point: Start returns a ready Server; Server.Client connects a client
// to it and Server.Close stops it. Starting again with Server.Config() (same
// directory, same ports) restarts it with its data, which is how tests
// simulate a config centre restart.
//
// etcd's own zap logs are discarded unless Config.EtcdLog is set, so a test
// run stays quiet; graylane's own start/stop messages go to Config.Logger.
package etcdserver
