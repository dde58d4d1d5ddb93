// Command kwok is sigs.k8s.io/kwok v0.7.0 (Kubernetes WithOut Kubelet) built
// from graylane's pinned versions. kwok plays the kubelet for fake Nodes: it
// marks them Ready and walks their pods through lifecycle "stages" (Pending,
// Running, Ready, deleted) without running any container.
//
// It lives in its own module because kwok pins k8s.io/* v0.33 while graylane
// and tools/kubestack use v0.34; keeping them apart leaves kwok's dependency
// graph exactly as upstream tested it. Tests do not build it by hand:
// testsupport/kubestack builds it once through testenv.BuildTool, caches the
// binary, and starts it with a stage configuration that understands
// graylane's test annotations. Entry point: main (upstream cmd/kwok's main).
package main
