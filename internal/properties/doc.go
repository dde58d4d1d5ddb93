// Package properties reads and writes Java .properties files, the format
// of Apollo's properties namespaces and of many Java services' config: Parse
// follows java.util.Properties.load (comments, separators, continuations,
// escapes), and Canonical renders a set of properties as sorted, escaped
// "key=value" lines, so that equal sets have equal bytes and checksums.
//
// Entry points: Parse, Canonical.
package properties
