// Package enginetest holds test doubles for measuring and driving the
// engine from other packages' tests and benchmarks.
//
// Entry point: NewSignalling, a backend (and resolver) whose instances are
// ready at once, that notifies the engine after every change and reports
// the first time each version is asked for. Use it to time "document
// written in a centre -> first backend action" through the real engine.
package enginetest
