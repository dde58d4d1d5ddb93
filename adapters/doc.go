// Package adapters defines how graylane drives the places an app runs
// (Backend) and the thing that splits its traffic between versions
// (TrafficRouter). The two are separate so that, for example, hosts over SSH
// can pair with an nginx router.
//
// Entry points: the Backend and TrafficRouter interfaces and the optional
// capability interfaces beside them. Implementations live in sub-packages
// (adapters/process, adapters/proxy, ...); adapters/adaptertest is the
// conformance suite every one of them passes.
package adapters
