package live

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
	"github.com/livetape/livetape/stream"
)

// setChunkSize sends Set Chunk Size, so the next messages can use chunks of n bytes.
func (c *rawRTMP) setChunkSize(t testing.TB, n uint32) {
	t.Helper()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	c.send(t, chunkMessage(2, 1, 0, 0, b[:], 128, false))
}

// keepPublishing pushes the av fixture to rtmpURL with ever-growing timestamps until
// the test ends, and returns the stream's packet counter.
func keepPublishing(t *testing.T, s *testServer, id string) *stream.Stream {
	t.Helper()
	pkts := mediatest.ReadFLV(t, "../testdata/av.flv")
	pub := mediatest.PublishRTMP(t, "rtmp://"+s.rtmpAddr+"/live/"+id)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for loop := uint32(0); ; loop++ {
			for _, p := range pkts {
				select {
				case <-stop:
					return
				default:
				}
				if pub.Write(p.Kind, loop*5000+p.Timestamp, p.Body()) != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return s.waitLive(t, "live", id)
}

// stillFlowing fails unless st receives more packets.
func stillFlowing(t *testing.T, st *stream.Stream) {
	t.Helper()
	n := st.Packets()
	waitFor(t, "the other stream to keep going", 10*time.Second, func() bool { return st.Packets() > n+10 })
}

// TestCommandNestingBombRefused: a connect nested deep is refused by the pre-scan
// before go-amf0's recursive decoder runs (1.5 M levels overflowed its stack and killed
// the process); a huge one is refused by its header, before it is buffered. Other
// streams keep going.
func TestCommandNestingBombRefused(t *testing.T) {
	s := startServer(t, nil)
	other := keepPublishing(t, s, "other")

	for _, tc := range []struct {
		name, reason string
		depth        int
	}{
		{"deep", "nested deeper than 64 levels", 1000},                // 7 KB: within the size bound
		{"huge", "exceed the 65536-byte limit of a command", 100_000}, // 700 KB
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.rtmpAddr)
			c.setChunkSize(t, 60000)
			var a amf0
			a.str("connect").num(1).nested(tc.depth)
			c.send(t, chunkMessage(3, typeCommandAMF0, 0, 0, a.Bytes(), 60000, false))
			c.waitClosed(t)
			waitFor(t, "the refusal in the log", 5*time.Second, func() bool {
				return strings.Contains(s.logs.String(), tc.reason)
			})
			stillFlowing(t, other)
		})
	}
	if !strings.Contains(s.logs.String(), "rtmp message refused, closing the connection") {
		t.Errorf("no refusal logged:\n%s", s.logs.String())
	}
}

// TestMessageSizeLimits: a connection that is not an accepted publisher may send no
// large message; a publisher may send up to live.max_message_size, and a larger one
// is refused before it is buffered.
func TestMessageSizeLimits(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxMessageSize = 1 << 20 })
	other := keepPublishing(t, s, "other")

	t.Run("before publish", func(t *testing.T) {
		c := dialRaw(t, s.rtmpAddr)
		c.connect(t, "live")
		// Only the type-0 header of a 16 MB video message: refused before its payload comes.
		c.send(t, []byte{6, 0, 0, 0, 0xff, 0xff, 0xff, typeVideo, 0, 0, 0, 0})
		c.waitClosed(t)
		waitFor(t, "the refusal", 5*time.Second, func() bool {
			return strings.Contains(s.logs.String(), "exceed the 65536-byte limit of a connection that is not publishing")
		})
	})

	t.Run("publisher", func(t *testing.T) {
		pub := mediatest.PublishRTMP(t, "rtmp://"+s.rtmpAddr+"/live/big")
		var st *stream.Stream
		waitFor(t, "the push", 10*time.Second, func() bool { st = s.hub.Lookup("live", "big"); return st != nil })
		frame := func(size int) []byte {
			b := make([]byte, size)
			copy(b, []byte{0x17, 1}) // AVC keyframe, NALU
			return b
		}
		if err := pub.Write(media.KindVideo, 0, frame(1<<20)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the 1 MiB frame", 10*time.Second, func() bool { return st.Packets() == 1 })
		if err := pub.Write(media.KindVideo, 40, frame(1<<20+1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the refusal", 10*time.Second, func() bool {
			return strings.Contains(s.logs.String(), "1048577 bytes exceed the 1048576-byte limit of live.max_message_size")
		})
		waitFor(t, "the push to end", 10*time.Second, func() bool { return s.hub.Lookup("live", "big") == nil })
	})
	stillFlowing(t, other)
}

// TestPartialMessagesBounded: a connection cannot make the server hold incomplete
// messages on many chunk streams at once.
func TestPartialMessagesBounded(t *testing.T) {
	s := startServer(t, nil)
	c := dialRaw(t, s.rtmpAddr)
	c.connect(t, "live")
	for csid := 10; csid < 10+maxPartialMessages+1; csid++ {
		// The first 128-byte chunk of a 60000-byte message on each chunk stream.
		c.send(t, chunkMessage(csid, 18, 0, 0, make([]byte, 60000), 128, false)[:12+128])
	}
	c.waitClosed(t)
	if !strings.Contains(s.logs.String(), "more than 8 incomplete messages at once") {
		t.Errorf("no refusal logged:\n%s", s.logs.String())
	}
}

func TestCheckAMF0(t *testing.T) {
	var meta amf0
	meta.str("@setDataFrame").str("onMetaData")
	meta.WriteByte(0x08) // ECMA array with a nested object and a strict array
	meta.Write([]byte{0, 0, 0, 2})
	meta.Write([]byte{0, 5})
	meta.WriteString("width")
	meta.num(1280)
	meta.Write([]byte{0, 4})
	meta.WriteString("keys")
	meta.Write([]byte{0x0a, 0, 0, 0, 2})
	meta.num(0).object("k", "v")
	meta.Write([]byte{0, 0, 0x09})

	hugeArray := []byte{0x0a, 0x7f, 0xff, 0xff, 0xff, 0x05}
	var deep64, deep65 amf0
	deep64.nested(64)
	deep65.nested(65)
	var deepArrays bytes.Buffer
	for range 100 {
		deepArrays.Write([]byte{0x0a, 0, 0, 0, 1})
	}
	deepArrays.WriteByte(0x05)

	for _, tc := range []struct {
		name    string
		body    []byte
		wantErr string
	}{
		{"metadata", meta.Bytes(), ""},
		{"depth 64", deep64.Bytes(), ""},
		{"depth 65", deep65.Bytes(), "nested deeper than 64"},
		{"nested strict arrays", deepArrays.Bytes(), "nested deeper than 64"},
		{"strict array count past the body", hugeArray, "strict array of 2147483647 elements"},
		{"truncated: left to the decoder", meta.Bytes()[:20], ""},
		{"unknown marker: left to the decoder", []byte{0x11, 0x03, 0x03}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := flv.ScanAMF0(tc.body, maxAMFDepth)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
