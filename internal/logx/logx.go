// Package logx holds graylane's one logger default: a component given no
// *slog.Logger logs nothing. cmd/graylane hands every component a logger
// (with a "component" attribute); libraries embedded in services (sdk/...)
// and tests stay quiet unless they pass one.
//
// Entry point: OrDiscard.
package logx

import "log/slog"

// OrDiscard returns l, or a logger that discards everything when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
