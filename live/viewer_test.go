package live

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
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
		_, n := st.GOP()
		return n > 20
	})
	cachedKey, _ := st.GOP()

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

// A viewer joining after a few GOPs gets onMetaData at timestamp 0 as its first tag:
// FFmpeg's FLV demuxer skips onMetaData only at 0 and turns a later one into an extra
// data stream, which `-c copy` then carries into its outputs.
func TestLateViewerSeesNoDataStream(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, nil)
	push(t, "rtmp://"+s.rtmpAddr+"/live/meta", 30)
	st := s.waitLive(t, "live", "meta")
	waitFor(t, "a GOP cached after 2 s of stream", 20*time.Second, func() bool {
		key, n := st.GOP()
		_, _, _, meta := st.Cached()
		return n > 0 && key > 2000 && meta
	})

	for _, tc := range []struct{ name, url string }{
		{"http-flv", s.httpURL + "/live/meta.flv"},
		{"rtmp", "rtmp://" + s.rtmpAddr + "/live/meta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := probe(t, tc.url, 1)
			var types []string
			for _, st := range r.Streams {
				types = append(types, st.CodecType)
			}
			slices.Sort(types)
			if !slices.Equal(types, []string{"audio", "video"}) {
				t.Errorf("streams %v, want one video and one audio (no data or subtitle stream)", types)
			}
		})
	}

	// The first tag is the metadata, at 0; the codec headers and the GOP follow at the
	// GOP's time, so the viewer's timeline does not jump.
	resp, err := http.Get(s.httpURL + "/live/meta.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd, err := flv.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	first, err := rd.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if first.Kind != media.KindData || first.Timestamp != 0 {
		t.Errorf("first tag: kind %v at %d ms, want onMetaData at 0", first.Kind, first.Timestamp)
	}
	next, err := rd.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if !next.SequenceHeader || next.Timestamp < 2000 {
		t.Errorf("second tag: sequence header %v at %d ms, want one at the cached GOP's time", next.SequenceHeader, next.Timestamp)
	}
}

// An RTMP viewer that stops reading is dropped like an HTTP-FLV one: its blocked write
// is aborted and its socket closed at once, while the publisher and another RTMP viewer
// go on.
func TestStalledRTMPViewer(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, func(c *Config) { c.ViewerQueue = 64 })
	p := push(t, "rtmp://"+s.rtmpAddr+"/live/slowrtmp", 40, "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "500k")
	st := s.waitLive(t, "live", "slowrtmp")

	stalled := dialStalledRTMP(t, s.rtmpAddr, "live", "slowrtmp")
	waitFor(t, "the stalled viewer to subscribe", 5*time.Second, func() bool { return st.Viewers() >= 2 }) // HLS + stalled

	rtmpURL := "rtmp://" + s.rtmpAddr + "/live/slowrtmp"
	before := probe(t, rtmpURL, 1)
	waitFor(t, "the stalled viewer to be dropped", 30*time.Second, func() bool {
		return strings.Contains(s.logs.String(), "rtmp player dropped")
	})
	packets := st.Packets()
	after := probe(t, rtmpURL, 3)
	_, _, _, n1 := before.Stream("video")
	_, _, _, n2 := after.Stream("video")
	if n1 == 0 || n2 <= n1 {
		t.Errorf("second RTMP viewer frames: %d then %d", n1, n2)
	}
	if st.Packets() <= packets || s.hub.Lookup("live", "slowrtmp") != st {
		t.Error("the publisher did not go on after the drop")
	}
	if p.Stderr.String() != "" {
		t.Errorf("publisher complained: %s", p.Stderr)
	}
	// The write the viewer blocked was aborted by the drop, not ended by a timeout. (The
	// probes, which hang up, are "gone" at their next write.)
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, "rtmp player gone") && strings.Contains(line, "conn="+stalled.LocalAddr().String()) {
			t.Errorf("the stalled viewer's write ended by error, not by the drop: %s", line)
		}
	}
	// The drop closes the stalled connection at once, not after a write timeout.
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<20)
	for {
		if _, err := stalled.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Error("stalled RTMP viewer's connection was not closed after the drop")
			}
			break
		}
	}
}

// dialStalledRTMP plays app/name over RTMP with a tiny receive buffer and never reads.
func dialStalledRTMP(t testing.TB, addr, app, name string) net.Conn {
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
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := clientHandshake(c); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if _, err := c.Write(playCommands(app, name)); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// stackInuse is the memory held by goroutines' stacks.
func stackInuse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}

// A viewer keeps little on the server's heap: its queue, its writer, its connection;
// an RTMP viewer also go-rtmp's state. net/http's buffered reader and writer, response
// buffer and request are let go once an HTTP-FLV connection is hijacked; go-rtmp lets go
// of the commands it read and wrote, of its logger entries and, once a player plays, of
// its whole read side (PATCHES.md 12); a queue that keeps up holds a few slots, not its
// limit. Heap per HTTP-FLV viewer and per player: 17.6-18.3 and 21-22 KiB at first,
// 6.8-7.5 and 13.8-15.0 KiB before the queues shrank, 2.1-2.9 and 10.5-10.8 KiB before
// patch 12, 8.2-9.0 KiB a player after it.
func TestViewerHeap(t *testing.T) {
	s := startServer(t, nil)
	pub := mediatest.PublishRTMP(t, "rtmp://"+s.rtmpAddr+"/live/heap")
	for _, p := range mediatest.ReadFLV(t, "../testdata/av.flv") {
		if err := pub.Write(p.Kind, p.Timestamp, p.Body()); err != nil {
			t.Fatal(err)
		}
	}
	st := s.waitLive(t, "live", "heap")
	httpAddr := strings.TrimPrefix(s.httpURL, "http://")
	// settledHeap is the live heap once two readings agree within 128 bytes a viewer:
	// what the viewers' goroutines allocate for their first writes counts for their
	// protocol whenever they get to run (on a loaded machine, after they subscribed).
	settledHeap := func() int64 {
		last := mediatest.HeapAfterGC()
		waitFor(t, "the heap to settle", 20*time.Second, func() bool {
			h := mediatest.HeapAfterGC()
			settled := h-last > -16<<10 && h-last < 16<<10
			last = h
			return settled
		})
		return last
	}
	for _, tc := range []struct {
		proto, addr string
		limit       int64
		play        func(c net.Conn) error
	}{
		{"http-flv", httpAddr, 5 << 10, func(c net.Conn) error {
			_, err := fmt.Fprintf(c, "GET /live/heap.flv HTTP/1.1\r\nHost: %s\r\n\r\n", httpAddr)
			return err
		}},
		{"rtmp", s.rtmpAddr, 10 << 10, func(c net.Conn) error {
			if err := clientHandshake(c); err != nil {
				return err
			}
			_, err := c.Write(playCommands("live", "heap"))
			return err
		}},
	} {
		base := st.Viewers()
		const viewers = 128
		s.logs.Grow(1 << 20)
		before := settledHeap()
		stacksBefore := stackInuse()
		goroutines := runtime.NumGoroutine()
		for range viewers {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := tc.play(c); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, tc.proto+" viewers to subscribe", 10*time.Second, func() bool { return st.Viewers() == base+viewers })
		perViewer := (settledHeap() - before) / viewers
		t.Logf("%s: %d bytes of heap per viewer", tc.proto, perViewer)
		if perViewer > tc.limit {
			t.Errorf("an %s viewer keeps %d bytes of heap, want at most %d KiB", tc.proto, perViewer, tc.limit>>10)
		}
		// One goroutine a viewer (its stack is the next largest cost): the one that
		// writes to it. An eighth more for what else runs meanwhile.
		if n := runtime.NumGoroutine() - goroutines; n > viewers+viewers/8 {
			t.Errorf("%d %s viewers added %d goroutines, want one each", viewers, tc.proto, n)
		}
		// That goroutine's stack stays small: an RTMP player played on go-rtmp's
		// reader goroutine, deep in its handlers, whose stack had grown to 8 KiB
		// (16 KiB under the race detector; now 4 and 8, HTTP-FLV 3-4).
		stackLimit := int64(6 << 10)
		if raceEnabled {
			stackLimit *= 2
		}
		perViewer = (stackInuse() - stacksBefore) / viewers
		t.Logf("%s: %d bytes of stack per viewer", tc.proto, perViewer)
		if perViewer > stackLimit {
			t.Errorf("an %s viewer keeps %d bytes of stack, want at most %d KiB", tc.proto, perViewer, stackLimit>>10)
		}
	}
}
