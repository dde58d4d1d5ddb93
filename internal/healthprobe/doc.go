// Package healthprobe is graylane's own HTTP health check of an instance,
// shared by the backends that judge readiness themselves (process, docker,
// ssh):
//
//   - SpecOf turns a release's health section into what to probe, with the
//     defaults filled in (spec.DefaultHealthPath, Interval, Timeout);
//   - Prober.Check sends one probe: GET path on the instance's address,
//     bounded by the timeout; a 2xx answer is healthy;
//   - Streak turns a sequence of probe results into readiness: one passing
//     probe makes an instance ready, FailureThreshold failures in a row make
//     a ready one unready, and until its first pass an instance is probed
//     fast (50ms, doubling up to the interval).
//
// Entry points: SpecOf, New (a Prober), Streak.
package healthprobe
