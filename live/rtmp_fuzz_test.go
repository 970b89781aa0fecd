package live

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// pipeListener hands the RTMP server in-memory connections: each fuzz input takes the
// path a real accepted connection takes, through ServeRTMP, without a socket.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// FuzzRTMPConn feeds bytes to the RTMP server as one client connection: with
// handshake set, after a valid handshake (the input is the chunk stream), else raw from
// the first byte. The connection handler must not panic, must return once the client
// is gone, and must not let the input make the heap grow past a bound.
func FuzzRTMPConn(f *testing.F) {
	pkts := mediatest.ReadFLV(f, "../testdata/av.flv")
	var media1 []byte // a publisher's first messages, ffmpeg-like: 4096-byte chunks
	var sz [4]byte
	sz[2] = 0x10 // Set Chunk Size 4096
	media1 = append(media1, chunkMessage(2, 1, 0, 0, sz[:], 128, false)...)
	for _, p := range pkts[:20] {
		media1 = append(media1, chunkMessage(int(p.Kind)-2, byte(p.Kind), 1, p.Timestamp, p.Body(), 4096, false)...)
	}
	var extended []byte // the same past 0xFFFFFF, 128-byte chunks repeating the extended timestamp
	for _, p := range pkts[:20] {
		extended = append(extended, chunkMessage(int(p.Kind)-2, byte(p.Kind), 1, 0xffffff+p.Timestamp, p.Body(), 128, true)...)
	}
	var play, bomb amf0
	play.str("play").num(3).null().str("nosuch")
	bomb.str("connect").num(1).nested(100)

	f.Add(append(publishCommands("live", "fuzz"), media1...), true)
	f.Add(append(publishCommands("live", "fuzz"), extended...), true)
	f.Add(append(connectCommand("live"), chunkMessage(8, typeCommandAMF0, 1, 0, play.Bytes(), 128, false)...), true)
	f.Add(chunkMessage(3, typeCommandAMF0, 0, 0, bomb.Bytes(), 128, false), true)
	f.Add(append(append([]byte{3}, make([]byte, 2*rtmpHandshakeSize)...), publishCommands("live", "fuzz")...), false)

	cfg := DefaultConfig()
	cfg.MaxMessageSize = 1 << 20
	s := NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln := newPipeListener()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeRTMP(ctx, ln) }()
	f.Cleanup(func() { cancel(); <-done })

	const heapBound = 256 << 20
	f.Fuzz(func(t *testing.T, data []byte, handshake bool) {
		c := ln.dial()
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if handshake {
			if err := clientHandshake(c); err != nil {
				t.Fatalf("handshake: %v", err)
			}
		}
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(drained) }()
		c.Write(data) // the server may refuse and close before reading it all
		c.Close()
		<-drained
		mediatest.WaitFor(t, "the connection handler to return", 10*time.Second, func() bool {
			s.connMu.Lock()
			defer s.connMu.Unlock()
			return len(s.conns) == 0
		})
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > heapBound {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > heapBound {
				t.Fatalf("heap %d MiB after the connection ended", ms.HeapAlloc>>20)
			}
		}
		for _, st := range s.hub.Streams() { // a publish the input made is over
			if st.Params.StreamID == "fuzz" {
				mediatest.WaitFor(t, "the push to end", 10*time.Second, func() bool { return s.hub.Lookup("live", "fuzz") == nil })
			}
		}
	})
}
