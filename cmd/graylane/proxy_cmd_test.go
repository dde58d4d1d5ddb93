package main

import (
	"errors"
	"strings"
	"testing"
)

// TestProxyCmdRefusesBadGCSizing: a negative budget or a GC percent of 0
// is refused with exit code 2 naming the flag, before anything starts.
func TestProxyCmdRefusesBadGCSizing(t *testing.T) {
	for _, c := range []struct{ args []string }{
		{[]string{"--gc-budget-mib", "-1"}},
		{[]string{"--gc-percent", "0"}},
	} {
		root := newRoot()
		root.SetArgs(append([]string{"proxy", "--dir", t.TempDir()}, c.args...))
		err := root.Execute()
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), c.args[0]) {
			t.Errorf("%v: err %v, want exit code 2 naming %s", c.args, err, c.args[0])
		}
	}
}
