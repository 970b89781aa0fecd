//go:build !linux

package live

import (
	"io"
	"net"
)

// socketReader is c itself: the raw read of sockio_linux.go is Linux's.
func socketReader(c net.Conn) io.Reader { return c }

// socketWriter writes through the connection: the raw writev of sockio_linux.go is
// Linux's.
type socketWriter struct{ conn net.Conn }

func newSocketWriter(c net.Conn) *socketWriter { return &socketWriter{conn: c} }

func (w *socketWriter) raw() bool { return false }

func (w *socketWriter) writeBuffers(bufs *net.Buffers) error {
	_, err := bufs.WriteTo(w.conn)
	return err
}
