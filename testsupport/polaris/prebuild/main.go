package main

import (
	"fmt"
	"os"
	"time"

	"github.com/graylane/graylane/testsupport/polaris"
)

func main() {
	start := time.Now()
	bin, err := polaris.BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "polaris prebuild:", err)
		os.Exit(1)
	}
	fmt.Printf("polaris %s ready in %v: %s\n", polaris.Version, time.Since(start).Round(time.Millisecond), bin)
}
