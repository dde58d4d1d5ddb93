// Package deployments holds no code: it is the home of graylane's
// installation files (Helm chart, systemd unit, Ansible role, Kubernetes
// manifests, local configs) and of the tests that check them against real
// tools: systemd-analyze for the unit (systemd_test.go), ansible-playbook
// against sshd test hosts for the role (ansible_test.go), and Helm's Go
// SDK plus a real kube-apiserver for the chart (helm_test.go).
//
// Entry point: the tests; see docs/install.md for the files themselves.
package deployments
