// Package gray is graylane's gray routing model: the published rules
// document, the matcher that decides a request's version from it, and the
// sticky user bucketing that keeps a user on one version in every service
// for the life of a release. It is pure (no I/O) and shared by graylane
// (which builds and publishes documents, adapters/grayrouter), its SDK
// (which decides requests, package sdk) and any gateway that implements
// docs/gray.md.
//
// Entry points:
//
//   - Build turns a release's gray section and the split in force into a
//     Document; Parse reads a published one (errors name the field).
//
//   - Compile turns a Document into a Table; Table.Decide routes one
//     request (no allocation), with an Input built on the stack:
//
//     t := gray.Compile(doc, gray.Self{Region: "eu"})
//     in := gray.Input{Req: r}
//     res := t.Decide(&in) // res.Version, res.Reason
//
//   - Bucket is the bucketing function (docs/gray-vectors.json has test
//     vectors for other implementations).
//
//   - Instance, InstanceKey and the Meta* keys describe registered
//     instances; HeaderVersion (n-d-version) carries decisions along a call
//     chain.
package gray
