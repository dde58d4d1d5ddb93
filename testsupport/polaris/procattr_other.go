//go:build !linux

package polaris

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
