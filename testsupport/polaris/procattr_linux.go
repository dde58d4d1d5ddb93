package polaris

import "syscall"

// procAttr makes the kernel SIGKILL the server when the test process dies,
// so a crashed or killed `go test` leaves no Polaris behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
