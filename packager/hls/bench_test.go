package hls

import (
	"bytes"
	"testing"

	"github.com/livetape/livetape/media"
)

// BenchmarkMuxTS muxes the 5 s fixture into one in-memory TS. MB/s counts the FLV tag
// bytes consumed; frames/s the audio and video frames.
func BenchmarkMuxTS(b *testing.B) {
	pkts := readPackets(b, fixture(b, "av.flv"))
	var in int64
	for _, p := range pkts {
		in += int64(len(p.Tag))
	}
	frames := countFrames(pkts, media.KindVideo) + countFrames(pkts, media.KindAudio)
	var out bytes.Buffer
	b.SetBytes(in)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out.Reset()
		m := NewMuxer(&out, Tracks{})
		for _, p := range pkts {
			if err := m.WritePacket(p); err != nil {
				b.Fatal(err)
			}
		}
		if err := m.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(frames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(out.Len())/float64(in), "out/in")
}
