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
	rc := rawConnOf(c)
	if rc == nil {
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
	if err := sockError("read", r.conn, err, errno); err != nil {
		return 0, err
	}
	if n == 0 {
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

// socketWriter writes a viewer's buffers with a raw writev(2) of its non-blocking socket,
// for the reason rawSocket reads without the runtime's syscall state: a writev through
// net.Conn enters it, and Go's system monitor, finding a P in a system call while the
// other P runs, takes the P back and keeps polling every 20 µs. 200 viewers: a third of
// the process's context switches were the monitor's, 800-950 a second in all against
// 430-520 with this writer, and 3-12 % less CPU. A writev of a non-blocking socket never
// blocks; the poller still waits on EAGAIN (a viewer's full socket) and applies the
// write deadline, which the writeGate sets and its abort ends.
type socketWriter struct {
	conn   net.Conn
	rc     syscall.RawConn       // nil: conn is not a socket (a pipe in tests); write through it
	writeF func(fd uintptr) bool // w.writeFD, bound once: a closure per write is an allocation

	// writeFD's arguments and result; one goroutine writes a viewer.
	bufs  *net.Buffers
	iov   []syscall.Iovec // kept for the next write, as poll.FD keeps its own
	errno syscall.Errno
}

func newSocketWriter(c net.Conn) *socketWriter {
	w := &socketWriter{conn: c, rc: rawConnOf(c)}
	w.writeF = w.writeFD
	return w
}

// raw tells whether w writes the socket itself.
func (w *socketWriter) raw() bool { return w.rc != nil }

// writeBuffers writes all of bufs, consuming it as net.Buffers.WriteTo does.
func (w *socketWriter) writeBuffers(bufs *net.Buffers) error {
	if w.rc == nil {
		_, err := bufs.WriteTo(w.conn)
		return err
	}
	w.bufs = bufs
	err := w.rc.Write(w.writeF)
	errno := w.errno
	w.bufs, w.errno = nil, 0
	clear(w.iov[:cap(w.iov)])                      // let the packets go
	return sockError("writev", w.conn, err, errno) // as net.Buffers.WriteTo names it
}

// writeFD writes w.bufs until it is empty (true), the socket is full (false: the
// poller waits) or an error (true, in w.errno).
func (w *socketWriter) writeFD(fd uintptr) bool {
	for len(*w.bufs) > 0 {
		iov := w.iov[:0]
		for _, b := range *w.bufs {
			if len(b) > 0 {
				v := syscall.Iovec{Base: unsafe.SliceData(b)}
				v.SetLen(len(b))
				iov = append(iov, v)
			}
		}
		w.iov = iov
		if len(iov) == 0 {
			*w.bufs = (*w.bufs)[:0]
			return true
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			consume(w.bufs, int(n))
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
}

// consume drops the first n bytes of v, as net.Buffers does once they are written.
func consume(v *net.Buffers, n int) {
	for len(*v) > 0 {
		l := len((*v)[0])
		if l > n {
			(*v)[0] = (*v)[0][n:]
			return
		}
		n -= l
		(*v)[0] = nil
		*v = (*v)[1:]
	}
}

// rawConnOf is c's raw connection, or nil when c is not a socket (a net.Pipe in tests).
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sockError is the error net.Conn gives for a raw op's outcome: the poller's (a
// deadline, the connection closed) under op's name instead of "raw-read" or
// "raw-write", or the system call's errno; nil when neither.
func sockError(op string, c net.Conn, err error, errno syscall.Errno) error {
	switch {
	case err != nil:
		if oe, ok := err.(*net.OpError); ok {
			oe.Op = op
		}
		return err
	case errno != 0:
		return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
	}
	return nil
}
