// Package console serves graylane's web console: a single-page app built
// from web/ (Vite, TypeScript, Preact) into dist/, which is committed and
// embedded in the binary with go:embed, so `go install` users get the
// console too and it needs nothing from the internet.
//
// Entry point: Handler(). `make console` rebuilds dist/ from web/;
// `make console-check` (part of `make test`) rebuilds it into a temporary
// directory and fails if anything differs from the committed files.
package console
