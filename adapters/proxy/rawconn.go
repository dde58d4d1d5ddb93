package proxy

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a TCP connection with raw system calls on its
// non-blocking socket, waiting in the runtime's poller only when the
// socket is not ready (EAGAIN), as net.Conn does. What it saves is the
// runtime's system-call bookkeeping around each read and write (a socket
// read or write that does not block needs none): the scheduler never
// hands the proxy's P to another thread in the middle of a request
// because a loopback write ran long. Deadlines still apply: the waits are
// the poller's.
type rawConn struct {
	net.Conn
	rc syscall.RawConn
}

// newRawConn wraps c when it is a TCP connection; other connections are
// returned as they are.
func newRawConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawConn{Conn: c, rc: rc}
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafePointer(p)), uintptr(len(p)))
		n, errno = int(r), e
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case errno == syscall.EINTR:
		return c.Read(p)
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		var n int
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafePointer(p[written:])), uintptr(len(p)-written))
			n, errno = int(r), e
			return errno != syscall.EAGAIN
		})
		switch {
		case err != nil:
			return written, err
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return written, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
		}
		written += n
	}
	return written, nil
}

func unsafePointer(p []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(p)) }
