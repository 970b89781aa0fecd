package live

import (
	"encoding/binary"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
)

// A publisher that sends its last frames and closes at once loses none of them, even
// when the server's writes to it fail meanwhile (here: an acknowledgement every 256
// bytes, which the closed socket refuses). go-rtmp ended the reading as soon as its
// writer failed, dropping what the publisher had sent and the server not yet read
// (patch 9).
func TestPublisherTailReadAfterClose(t *testing.T) {
	obs := newRecordingObserver()
	s := startServer(t, nil, obs)
	pkts := mediatest.ReadFLV(t, "../testdata/av.flv")
	for run := range 5 {
		c := dialRaw(t, s.rtmpAddr)
		c.publish(t, "live", "tail")
		ev := obs.next(t)
		if ev.kind != "start" {
			t.Fatalf("first event %+v", ev)
		}
		sub, _, err := ev.pub.Stream.SubscribeNoDrop(4096)
		if err != nil {
			t.Fatal(err)
		}
		// Window Acknowledgement Size 512: the server acknowledges every 256 bytes.
		win := make([]byte, 4)
		binary.BigEndian.PutUint32(win, 512)
		wire := chunkMessage(2, 5, 0, 0, win, 128, false)
		sent := 0
		for _, p := range pkts {
			typeID := byte(8)
			if p.Kind == media.KindVideo {
				typeID = typeVideo
			} else if p.Kind != media.KindAudio {
				continue
			}
			wire = append(wire, chunkMessage(6, typeID, 1, p.Timestamp, p.Body(), 128, false)...)
			sent++
		}
		c.send(t, wire)
		// Close once the kernel has sent it all (the unread acknowledgements make the
		// close a reset, which would drop what is still in the send queue).
		mediatest.WaitFor(t, "the frames sent", 10*time.Second, func() bool { return unsent(t, c.Conn) == 0 })
		c.Close()
		got := 0
		for p := range sub.Packets() {
			if p.Kind == media.KindVideo || p.Kind == media.KindAudio {
				got++
			}
		}
		if ev := obs.next(t); ev.kind != "end" {
			t.Fatalf("second event %+v", ev)
		}
		if got != sent {
			t.Fatalf("run %d: %d of the %d frames sent before the close were received", run, got, sent)
		}
	}
}

// unsent is what the kernel has yet to send of what was written to c (TIOCOUTQ).
func unsent(t *testing.T, c net.Conn) int {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	var errno syscall.Errno
	raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	})
	if errno != 0 {
		t.Fatalf("TIOCOUTQ: %v", errno)
	}
	return int(n)
}
