//go:build !linux

package process

import "errors"

// The process backend adopts instances by reading /proc; elsewhere New
// refuses to run rather than start instances twice.
const procfsSupported = false

type procStat struct {
	state      byte
	pgid       int
	startTicks uint64
}

var errNoProcfs = errors.New("the process backend needs /proc (Linux)")

func readProcStat(pid int) (procStat, error) { return procStat{}, errNoProcfs }
func readCmdline(pid int) ([]string, error)  { return nil, errNoProcfs }
func findByEnv(marker string) (int, bool)    { return 0, false }
