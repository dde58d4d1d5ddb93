package main

import (
	"fmt"
	"os"
	"time"

	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func main() {
	start := time.Now()
	root, err := testenv.FindRepoRoot()
	if err == nil {
		var dir string
		if dir, err = graylanetest.BuildRelease(root, graylanetest.PreviousRelease); err == nil {
			fmt.Printf("graylane %s (previous release) ready in %s after %v\n", graylanetest.PreviousRelease[:12], dir, time.Since(start).Round(time.Millisecond))
			return
		}
	}
	fmt.Fprintln(os.Stderr, "previous-release prebuild:", err)
	os.Exit(1)
}
