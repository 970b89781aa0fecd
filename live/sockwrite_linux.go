package live

import (
	"net"
	"os"
	"syscall"
	"unsafe"
)

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
	w := &socketWriter{conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
			w.writeF = w.writeFD
		}
	}
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
	clear(w.iov[:cap(w.iov)]) // let the packets go
	switch {
	case err != nil: // from the poller: the write deadline (or an abort), or closed
		if oe, ok := err.(*net.OpError); ok {
			oe.Op = "writev" // as net.Buffers.WriteTo says, not "raw-write"
		}
		return err
	case errno != 0:
		return &net.OpError{Op: "writev", Net: "tcp", Source: w.conn.LocalAddr(), Addr: w.conn.RemoteAddr(),
			Err: os.NewSyscallError("writev", errno)}
	}
	return nil
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
