// Package adapters defines how graylane drives the places an app runs
// (Backend) and the thing that splits its traffic between versions
// (TrafficRouter). The two are separate so that, for example, hosts over SSH
// can pair with an nginx router.
//
// Entry points: the Backend and TrafficRouter interfaces and the optional
// capability interfaces beside them. Implementations live in sub-packages
// (adapters/process, adapters/proxy, ...); adapters/adaptertest is the
// conformance suite every one of them passes.
//
// # Writing a backend
//
// Implement Backend (and the optional Notifier, Forgetter), add the
// interface guard var _ adapters.Backend = (*Backend)(nil), and run
// adaptertest.RunBackend against a real instance of what it drives. The
// canary step and reason an Apply serves arrive as its last argument
// (Step; NoStep when none): they used to ride in ctx (WithStep/StepFrom,
// removed), which hid business data from the signature. A backend that
// does not report steps anywhere takes it as "_ adapters.Step".
package adapters
