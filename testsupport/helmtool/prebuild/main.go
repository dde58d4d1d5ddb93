package main

import (
	"fmt"
	"os"
	"time"

	"github.com/graylane/graylane/testsupport/helmtool"
)

func main() {
	start := time.Now()
	p, err := helmtool.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helmtool prebuild:", err)
		os.Exit(1)
	}
	fmt.Printf("%s ready in %v\n", p, time.Since(start).Round(time.Millisecond))
}
