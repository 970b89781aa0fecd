//go:build !linux

package live

import (
	"io"
	"net"
)

// socketReader is c itself: the raw read of sockread_linux.go is Linux's.
func socketReader(c net.Conn) io.Reader { return c }
