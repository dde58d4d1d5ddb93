package sdktest

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Logger writes to the test log until the test ends (later lines from
// background goroutines are dropped).
func Logger(t testing.TB, level slog.Level) *slog.Logger { return testenv.Logger(t, level) }

// Ctx returns a context that ends after d or with the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Must fails the test on err.
func Must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Percent formats a share.
func Percent(n, of int) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(max(of, 1))) }
