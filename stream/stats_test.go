package stream

import (
	"testing"
	"time"

	"github.com/livetape/livetape/media"
)

// pushSynthetic writes seconds of a 25 fps video (one keyframe every 2 s, bodies of
// videoBody bytes) and 50 audio frames per second (audioBody bytes) to s.
func pushSynthetic(t *testing.T, s *Stream, seconds, videoBody, audioBody int) {
	t.Helper()
	s.WritePacket(seqHeader(t))
	for ms := 0; ms < seconds*1000; ms += 20 {
		if ms%40 == 0 {
			body := make([]byte, videoBody)
			frameType := byte(0x27)
			if ms%2000 == 0 {
				frameType = 0x17
			}
			copy(body, []byte{frameType, 1, 0, 0, 0})
			p, err := media.NewPacket(media.KindVideo, uint32(ms), body)
			if err != nil {
				t.Fatal(err)
			}
			s.WritePacket(p)
		}
		body := make([]byte, audioBody)
		copy(body, []byte{0xaf, 1})
		p, err := media.NewPacket(media.KindAudio, uint32(ms), body)
		if err != nil {
			t.Fatal(err)
		}
		s.WritePacket(p)
	}
}

// Rates are measured on the publisher's timestamps: what was pushed, exactly.
func TestStatsRates(t *testing.T) {
	s := newTestStream(t, 1024)
	// 25 fps × 4000 bytes = 800 kbit/s of video; 50 × 250 bytes = 100 kbit/s of audio.
	pushSynthetic(t, s, 10, 4000, 250)
	st := s.Stats()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"fps", st.FPS, 25}, {"video kbps", st.VideoKbps, 800}, {"audio kbps", st.AudioKbps, 100},
		// Since start: frames over the media duration (9.98 s for 250 frames).
		{"average video kbps", st.VideoKbpsAverage, 250 * 4000 * 8 / 1000 / 9.98},
		{"average fps", st.FPSAverage, 249 / 9.98},
	} {
		if diff := c.got - c.want; diff > 0.01 || diff < -0.01 {
			t.Errorf("%s = %.3f, want %.3f", c.name, c.got, c.want)
		}
	}
	if st.KeyframeInterval != 2*time.Second {
		t.Errorf("keyframe interval %v, want 2s", st.KeyframeInterval)
	}
	if st.VideoFrames != 250 || st.AudioFrames != 500 {
		t.Errorf("frames video %d audio %d, want 250 and 500", st.VideoFrames, st.AudioFrames)
	}
	if st.MediaDuration != 9980*time.Millisecond {
		t.Errorf("media duration %v", st.MediaDuration)
	}
}

// Viewers and bytes out are counted per protocol; internal readers are not viewers;
// skips and drops are counted for the stream.
func TestStatsViewersPerProtocol(t *testing.T) {
	s := newTestStream(t, 64)
	s.SetHLSWindow(time.Hour)
	var subs []*Subscriber
	for _, p := range []Protocol{ProtoHTTPFLV, ProtoHTTPFLV, ProtoHTTPFLV, ProtoRTMP, ProtoRTMP} {
		sub, _, err := s.SubscribeAs(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	rec, _, _ := s.SubscribeNoDrop(0)
	s.HLSPlaylistServed(HLSClient("10.0.0.1:5000", "hls.js"), 100)
	s.HLSPlaylistServed(HLSClient("10.0.0.1:5001", "hls.js"), 100) // same client, new connection
	s.HLSPlaylistServed(HLSClient("10.0.0.1:5002", "Safari"), 100)
	s.HLSSegmentServed(1000)

	pkts := gopPackets(t, 10, 60, 100) // one keyframe, then 9 frames
	for _, p := range pkts[:5] {
		s.WritePacket(p)
	}
	subs[0].Close() // leaves; its bytes stay counted
	for _, p := range pkts[5:] {
		s.WritePacket(p)
	}
	st := s.Stats()
	want := map[Protocol]int{ProtoHTTPFLV: 2, ProtoRTMP: 2, ProtoHLS: 2}
	for p, n := range want {
		if st.Viewers[p] != n {
			t.Errorf("%v viewers %d, want %d", p, st.Viewers[p], n)
		}
	}
	tag := int64(len(pkts[0].Tag))
	if got, want := st.BytesOut[ProtoHTTPFLV], tag*(5+10+10); got != want {
		t.Errorf("http-flv bytes out %d, want %d", got, want)
	}
	if got := st.BytesOut[ProtoRTMP]; got != tag*20 {
		t.Errorf("rtmp bytes out %d, want %d", got, tag*20)
	}
	if got := st.BytesOut[ProtoHLS]; got != 1300 {
		t.Errorf("hls bytes out %d, want 1300", got)
	}
	if st.Skipped != 0 || st.Dropped != 0 {
		t.Errorf("skipped %d dropped %d, want none", st.Skipped, st.Dropped)
	}
	_ = rec

	// An undrained viewer overflows: skips, then is dropped at the second keyframe.
	for _, p := range gopPackets(t, 130, 60, 100) {
		s.WritePacket(p)
	}
	st = s.Stats()
	if st.Dropped != 4 || st.Skipped == 0 {
		t.Errorf("after overflow: dropped %d (want 4 viewers), skipped %d (want > 0)", st.Dropped, st.Skipped)
	}
	if st.InternalSkipped == 0 {
		t.Errorf("the internal reader's skips are not counted")
	}
}

// An HLS client counts as a viewer only while it reloads within the window.
func TestHLSViewersExpire(t *testing.T) {
	var h hlsViewers
	h.window = 4 * time.Second
	t0 := time.Unix(1000, 0)
	h.seen("a", t0, 10)
	h.seen("b", t0.Add(3*time.Second), 10)
	if n, b := h.viewers(t0.Add(3 * time.Second)); n != 2 || b != 20 {
		t.Fatalf("viewers %d bytes %d, want 2 and 20", n, b)
	}
	if n, _ := h.viewers(t0.Add(5 * time.Second)); n != 1 {
		t.Fatalf("after a's window: %d viewers, want 1", n)
	}
}
