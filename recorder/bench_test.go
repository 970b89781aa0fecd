package recorder

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/hls"
	"github.com/livetape/livetape/stream"
)

// synthetic2500k returns secs seconds of a 2.5 Mbit/s 30 fps stream with a 2 s GOP and
// 128 kbit/s AAC, interleaved as an encoder sends it, using av.flv's codec headers.
func synthetic2500k(b *testing.B, secs int) []*media.Packet {
	b.Helper()
	var pkts []*media.Packet
	for _, p := range readFixture(b, "av.flv") {
		if p.SequenceHeader {
			pkts = append(pkts, p)
		}
	}
	const fps, gop = 30, 60
	inter := (2_500_000 - 128_000) / 8 * 2 / (gop + 4) // keyframes weigh 5 inter frames
	frame := func(i int) *media.Packet {
		size, head := inter, []byte{0x27, 1, 0, 0, 0}
		nal := byte(0x41)
		if i%gop == 0 {
			size, head, nal = 5*inter, []byte{0x17, 1, 0, 0, 0}, 0x65
		}
		body := make([]byte, 5+4+size)
		copy(body, head)
		binary.BigEndian.PutUint32(body[5:], uint32(size))
		body[9] = nal
		p, _ := media.NewPacket(media.KindVideo, uint32(i*1000/fps), body)
		return p
	}
	audio := make([]byte, 2+372)
	audio[0], audio[1] = 0xaf, 1
	next := 0.0
	for i := 0; i < secs*fps; i++ {
		ts := float64(i) * 1000 / fps
		for ; next <= ts; next += 1024 * 1000 / 44100.0 {
			p, _ := media.NewPacket(media.KindAudio, uint32(next), audio)
			pkts = append(pkts, p)
		}
		pkts = append(pkts, frame(i))
	}
	return pkts
}

// BenchmarkRecord records a 2.5 Mbit/s stream in every format and reports the CPU it
// costs as a share of one core per live stream: time spent / media time.
func BenchmarkRecord(b *testing.B) {
	const secs = 20
	pkts := synthetic2500k(b, secs)
	for _, formats := range [][]string{{"flv"}, {"hls"}, {"mp4"}, {"mp4", "hls", "flv"}} {
		b.Run(fmt.Sprint(formats), func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			dir := b.TempDir()
			rec, err := New(DefaultConfig(), dir, discardSink{}, log)
			if err != nil {
				b.Fatal(err)
			}
			var bytes int64
			for _, p := range pkts {
				bytes += int64(len(p.Tag))
			}
			b.SetBytes(bytes)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				dir := filepath.Join(dir, fmt.Sprint(i))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				s := &session{r: rec, dir: dir, formats: formats, interval: time.Hour, log: log,
					pub: &stream.Publication{PushID: fmt.Sprint(i), BroadcastID: "b", BroadcastPush: 1,
						Params: &stream.PushParams{App: "live", StreamID: "b"}}}
				if slices.Contains(formats, "hls") {
					if err := s.startHLS(discardSink{}); err != nil {
						b.Fatal(err)
					}
				}
				for _, p := range pkts {
					if err := s.handle(p); err != nil {
						b.Fatal(err)
					}
				}
				s.closeFragment("end")
				if s.hls != nil {
					s.hls.finish()
				}
				rec.Wait()
			}
			// CPU, not wall time: fsync waits cost the disk, not a core.
			perStream := (cpuTime() - cpu0).Seconds() / float64(b.N) / secs
			b.ReportMetric(100*perStream, "%core/stream")
		})
	}
}

// cpuTime is the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type discardSink struct{}

func (discardSink) FragmentClosed(m *Manifest) error {
	return os.RemoveAll(m.Dir())
}

func (discardSink) HLSSegmentClosed(s *HLSSegment) error {
	os.Remove(filepath.Join(s.dir, segRecordName(s.Seq)))
	return os.Remove(filepath.Join(s.dir, hls.SegmentName(s.Seq)))
}

func (discardSink) HLSPushEnded(*HLSPush) error { return nil }
