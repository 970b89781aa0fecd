package live

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawSocket reads a TCP connection with a raw read(2) of its non-blocking socket.
//
// A read through net.Conn enters the runtime's syscall state, and entering it wakes
// Go's system monitor (sysmon) whenever every P was idle, which on a node of publishers
// is often the case, as media arrives after pauses: 16 recorded pushes woke it about 500
// times a second through their reads (75 with this reader). Awake, sysmon polls every
// 20 µs until the node is idle again (a nanosleep and a wake-up each time), which was a
// fifth of the CPU of those pushes. A read of a non-blocking socket never blocks, so it
// needs no syscall state (the P it keeps for those microseconds is never wanted by
// anyone else); the runtime's poller still parks the goroutine on EAGAIN and applies
// the read deadline, as for net.Conn.
type rawSocket struct {
	rc    syscall.RawConn
	conn  net.Conn
	readF func(fd uintptr) bool // r.readFD, bound once: a closure per Read is an allocation

	// readFD's arguments and results; one goroutine reads a connection.
	buf   []byte
	n     int
	errno syscall.Errno
}

// socketReader reads c as a rawSocket, or c itself when it is not a socket (a net.Pipe
// in tests).
func socketReader(c net.Conn) io.Reader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawSocket{rc: rc, conn: c}
	r.readF = r.readFD
	return r
}

// Read is net.Conn's Read: at least one byte, io.EOF once the peer closed, or an
// *net.OpError (a timeout once the read deadline passed, net.ErrClosed once closed).
func (r *rawSocket) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.buf = b
	err := r.rc.Read(r.readF)
	n, errno := r.n, r.errno
	r.buf, r.n, r.errno = nil, 0, 0
	switch {
	case err != nil: // from the poller: a deadline, or the connection closed
		if oe, ok := err.(*net.OpError); ok {
			oe.Op = "read" // not "raw-read": the message is the same as net.Conn's
		}
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(),
			Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readFD reads the socket into r.buf; false (EAGAIN) has the poller wait.
func (r *rawSocket) readFD(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.buf))), uintptr(len(r.buf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the poller waits for data, or the deadline
		}
		r.n, r.errno = int(n), e
		return true
	}
}
