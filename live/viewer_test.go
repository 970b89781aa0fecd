package live

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
)

// A viewer joining mid-stream gets the cached GOP: its first video frame is a keyframe
// that was already sent by the publisher, so it never waits for the next one.
func TestFirstKeyframeFromCache(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, nil)
	push(t, "rtmp://"+s.rtmpAddr+"/live/k", 30)
	st := s.waitLive(t, "live", "k")
	// Join in the middle of a GOP.
	waitFor(t, "mid-GOP", 10*time.Second, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.gop) > 20
	})
	st.mu.Lock()
	cachedKey := st.gop[0].Timestamp
	st.mu.Unlock()

	start := time.Now()
	resp, err := http.Get(s.httpURL + "/live/k.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "video/x-flv" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("headers: %v", resp.Header)
	}
	r, err := flv.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != media.KindVideo || p.SequenceHeader {
			continue
		}
		if !p.Keyframe {
			t.Fatalf("first video frame (ts %d) is not a keyframe", p.Timestamp)
		}
		if p.Timestamp > cachedKey {
			t.Errorf("first keyframe ts %d is newer than the cached one (%d): the viewer waited for a GOP", p.Timestamp, cachedKey)
		}
		t.Logf("first keyframe after %v", time.Since(start))
		return
	}
}

// A viewer that stops reading does not hold up the publisher or another viewer; it is
// dropped once it stays behind.
func TestStalledViewer(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, func(c *Config) { c.ViewerQueue = 64 })
	// About 2 Mbit/s, so the stalled viewer's buffers fill within seconds.
	p := push(t, "rtmp://"+s.rtmpAddr+"/live/slow", 40, "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "500k")
	st := s.waitLive(t, "live", "slow")

	stalled := dialStalled(t, strings.TrimPrefix(s.httpURL, "http://"), "/live/slow.flv")
	defer stalled.Close()
	waitFor(t, "the stalled viewer to subscribe", 5*time.Second, func() bool { return st.Viewers() >= 2 }) // HLS + stalled

	before := probe(t, s.httpURL+"/live/slow.flv", 1)
	waitFor(t, "the stalled viewer to be dropped", 30*time.Second, func() bool {
		return strings.Contains(s.logs.String(), "dropping viewer")
	})
	after := probe(t, s.httpURL+"/live/slow.flv", 3)
	_, _, _, n1 := before.Stream("video")
	_, _, _, n2 := after.Stream("video")
	if n1 == 0 || n2 <= n1 {
		t.Errorf("second viewer frames: %d then %d", n1, n2)
	}
	if p.Stderr.String() != "" {
		t.Errorf("publisher complained: %s", p.Stderr)
	}
	// The drop closes the stalled connection at once, not after a write timeout.
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<20)
	for {
		if _, err := stalled.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Error("stalled viewer's connection was not closed after the drop")
			}
			break
		}
	}
}

// dialStalled opens an HTTP-FLV request with a tiny receive buffer and never reads it.
func dialStalled(t testing.TB, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
	return c
}
