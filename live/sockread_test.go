package live

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestSocketReader: the raw socket read behaves as net.Conn's Read does for everything
// idleConn and go-rtmp look at: data in order, the read deadline as a timeout, the
// peer's close as io.EOF, a closed connection as net.ErrClosed.
func TestSocketReader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	r := socketReader(server)
	if _, raw := r.(*rawSocket); !raw && runtime.GOOS == "linux" {
		t.Fatalf("socketReader of a TCP connection is %T, want the raw read", r)
	}

	// More than the socket buffers hold at once: the reader waits for the rest.
	want := make([]byte, 4<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(want)
		wrote <- err
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read bytes differ from those written")
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}

	// Nothing to read: the deadline ends the wait as a timeout.
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := r.Read(got)
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %d, %v; want a timeout", n, err)
	}
	server.SetReadDeadline(time.Time{})

	// The peer's last bytes, then its close.
	if _, err := client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if b, err := io.ReadAll(r); err != nil || string(b) != "bye" {
		t.Fatalf("read to the end: %q, %v; want \"bye\" and io.EOF", b, err)
	}
	if n, err := r.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d, %v; want io.EOF", n, err)
	}

	server.Close()
	if n, err := r.Read(got); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read of a closed connection: %d, %v; want net.ErrClosed", n, err)
	}
}

// TestSocketReaderPipe: a connection that is not a socket is read as it is.
func TestSocketReaderPipe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if r := socketReader(a); r != io.Reader(a) {
		t.Fatalf("socketReader of a pipe is %T, want the pipe itself", r)
	}
}
