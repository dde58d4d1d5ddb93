// Command graylane-helm lints and renders graylane's Helm chart
// (deployments/helm/graylane) with Helm's Go SDK (helm.sh/helm/v4), for
// tests and for machines without a helm binary:
//
//	graylane-helm lint CHART [--strict] [-f values.yaml]... [--set k=v]...
//	graylane-helm template CHART [--name graylane] [--namespace graylane] [-f values.yaml]... [--set k=v]...
//	              [--kube-version v1.34.2] [--api-versions monitoring.coreos.com/v1/ServiceMonitor]...
//
// lint is `helm lint` (action.Lint: Chart.yaml, values.schema.json, every
// template rendered and parsed); template is `helm template` (action.Install
// with a client-side dry run) and prints the manifest to stdout. Errors go
// to stderr with exit status 1; bad flags exit 2.
//
// It lives in its own module so that Helm and its Kubernetes dependencies
// stay out of graylane's go.mod. Tests build it once through
// testenv.BuildToolPath and cache the binary (see
// deployments/helm_test.go). Entry point: main.
package main
