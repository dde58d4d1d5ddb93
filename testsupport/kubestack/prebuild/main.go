package main

import (
	"fmt"
	"os"
	"time"

	"github.com/graylane/graylane/testsupport/kubestack"
)

func main() {
	start := time.Now()
	if err := kubestack.BuildBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, "kubestack prebuild:", err)
		os.Exit(1)
	}
	fmt.Printf("kubestack binaries ready in %v\n", time.Since(start).Round(time.Millisecond))
}
