package live

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestSocketReader: the raw socket read behaves as net.Conn's Read does for everything
// idleConn and go-rtmp look at: data in order, the read deadline as a timeout, the
// peer's close as io.EOF, a closed connection as net.ErrClosed.
func TestSocketReader(t *testing.T) {
	client, server := tcpPair(t)
	r := socketReader(server)
	if r == io.Reader(server) && runtime.GOOS == "linux" {
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

// TestSocketWriter: the raw writev writes every buffer in order across a full socket,
// honours the write deadline (a viewer that stopped reading), and reports the peer's
// reset; net.Buffers is consumed as WriteTo consumes it.
func TestSocketWriter(t *testing.T) {
	client, server := tcpPair(t)
	w := newSocketWriter(server)
	if !w.raw() && runtime.GOOS == "linux" {
		t.Fatal("the writer of a TCP connection does not write the socket itself")
	}

	// Many buffers of odd sizes, empty ones among them, more than the socket holds.
	var want []byte
	var bufs net.Buffers
	for i := range 300 {
		b := bytes.Repeat([]byte{byte(i)}, (i*7919)%40000)
		want = append(want, b...)
		bufs = append(bufs, b)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(want))))
		got <- b
	}()
	if err := w.writeBuffers(&bufs); err != nil {
		t.Fatalf("write: %v", err)
	}
	if len(bufs) != 0 {
		t.Fatalf("%d buffers left after the write", len(bufs))
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("read %d bytes, not the %d written", len(b), len(want))
	}

	// The client stops reading: the write fills the sockets and ends at the deadline.
	server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	big := net.Buffers{make([]byte, 64<<20)}
	err := w.writeBuffers(&big)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the deadline: %v; want a timeout", err)
	}
	server.SetWriteDeadline(time.Time{})

	// The client resets the connection: the write reports it.
	client.(*net.TCPConn).SetLinger(0)
	client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		one := net.Buffers{[]byte("x")}
		if err = w.writeBuffers(&one); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a reset connection keep succeeding")
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write to a reset connection: %v; want ECONNRESET or EPIPE", err)
	}

	server.Close()
	one := net.Buffers{[]byte("x")}
	if err := w.writeBuffers(&one); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write to a closed connection: %v; want net.ErrClosed", err)
	}
}

// tcpPair returns the two ends of a loopback TCP connection, closed when t ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
