// Package compose holds graylane's own Docker deployment: a Dockerfile
// that builds a FROM scratch image from source (static, time-zone data
// embedded), docker-compose.yml (one graylane with embedded etcd) and
// docker-compose.ha.yml (two graylanes, leader-elected, on an external
// etcd). The package has only tests: they bring the stack up on a private
// Docker Engine with docker-compose and check /readyz.
package compose
