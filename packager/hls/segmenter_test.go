package hls

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/livetape/livetape/media"
)

// countFrames counts the frames in an FLV: not the sequence headers, nor the AVC end
// of sequence ffmpeg writes last (AVCPacketType 2, no payload).
func countFrames(pkts []*media.Packet, kind media.Kind) int {
	n := 0
	for _, p := range pkts {
		if p.Kind == kind && !p.SequenceHeader && len(p.Payload()) > 0 {
			n++
		}
	}
	return n
}

func checkDurations(t *testing.T, segs []*Segment, want ...float64) {
	t.Helper()
	if len(segs) != len(want) {
		t.Fatalf("%d segments, want %d", len(segs), len(want))
	}
	for i, s := range segs {
		if s.Seq != i {
			t.Errorf("segment %d: seq %d", i, s.Seq)
		}
		if math.Abs(s.Duration-want[i]) > 0.1 {
			t.Errorf("segment %d: duration %.3f s, want %.1f", i, s.Duration, want[i])
		}
		if s.Discontinuity {
			t.Errorf("segment %d: discontinuity", i)
		}
	}
}

// checkPlaylist probes the VOD playlist the way a player reads it and each segment on
// its own, the way a player joining there does.
func checkPlaylist(t *testing.T, dir string, segs []*Segment, wantVideo, wantAudio bool, videoFrames int) {
	t.Helper()
	r := ffprobe(t, "-show_streams", "-show_format", "-count_frames", filepath.Join(dir, "playlist.m3u8"))
	if d, _ := strconv.ParseFloat(r.Format.Duration, 64); math.Abs(d-5) > 0.3 {
		t.Errorf("duration %s s, want 5 ± 0.3", r.Format.Duration)
	}
	if v := r.stream("video"); !wantVideo && v != nil {
		t.Errorf("unexpected video stream %+v", *v)
	} else if wantVideo {
		if v == nil || v.CodecName != "h264" || v.Width != 320 || v.Height != 240 {
			t.Fatalf("video stream %+v, want h264 320x240", v)
		}
		if v.NbReadFrames != strconv.Itoa(videoFrames) {
			t.Errorf("%s video frames decoded, want %d (as in the FLV)", v.NbReadFrames, videoFrames)
		}
	}
	if a := r.stream("audio"); wantAudio && (a == nil || a.CodecName != "aac") {
		t.Errorf("audio stream %+v, want aac", a)
	} else if !wantAudio && a != nil {
		t.Errorf("unexpected audio stream %+v", *a)
	}
	for _, s := range segs {
		path := filepath.Join(dir, fmt.Sprintf("seg-%d.ts", s.Seq))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != s.Size || len(data)%188 != 0 {
			t.Errorf("seg-%d.ts: %d bytes, Segment.Size %d", s.Seq, len(data), s.Size)
		}
		// Every segment opens with a PAT and a PMT, so it can be decoded alone.
		if len(data) < 2*188 || pid(data) != 0 || pid(data[188:]) != 0x1000 {
			t.Errorf("seg-%d.ts does not start with PAT, PMT", s.Seq)
		}
		if !wantVideo {
			continue
		}
		f := ffprobe(t, "-show_frames", "-select_streams", "v", "-read_intervals", "%+#1", path)
		if len(f.Frames) != 1 || f.Frames[0].KeyFrame != 1 || f.Frames[0].PictType != "I" {
			t.Errorf("seg-%d.ts: first video frame %+v, want a keyframe", s.Seq, f.Frames)
		}
	}
}

func TestSegmentAV(t *testing.T) {
	pkts := readPackets(t, fixture(t, "av.flv"))
	dir := t.TempDir()
	segs := segmentFiles(t, pkts, SegmenterConfig{Target: 2 * time.Second}, dir)
	checkDurations(t, segs, 2, 2, 1)
	checkPlaylist(t, dir, segs, true, true, countFrames(pkts, media.KindVideo))

	// Video PTS and DTS survive the trip: PTS = DTS + composition time.
	show := []string{"-show_entries", "packet=pts_time,dts_time,flags", "-select_streams", "v"}
	src := ffprobe(t, append(show, fixture(t, "av.flv"))...).Packets
	got := ffprobe(t, append(show, filepath.Join(dir, "playlist.m3u8"))...).Packets
	if len(got) != len(src) {
		t.Fatalf("%d video packets, want %d", len(got), len(src))
	}
	for i := range src {
		if got[i] != src[i] {
			t.Errorf("video packet %d: %+v, want %+v as in the FLV", i, got[i], src[i])
		}
	}
}

func TestSegmentVideoOnly(t *testing.T) {
	pkts := readPackets(t, fixture(t, "video.flv"))
	dir := t.TempDir()
	segs := segmentFiles(t, pkts, SegmenterConfig{Target: 2 * time.Second}, dir)
	checkDurations(t, segs, 2, 2, 1)
	checkPlaylist(t, dir, segs, true, false, countFrames(pkts, media.KindVideo))
}

func TestSegmentAudioOnly(t *testing.T) {
	pkts := readPackets(t, fixture(t, "audio.flv"))
	dir := t.TempDir()
	segs := segmentFiles(t, pkts, SegmenterConfig{Target: 2 * time.Second}, dir)
	// Audio-only segments are cut at the first frame at or after 2 s; AAC frames are
	// 23.2 ms, so each is at most one frame longer.
	checkDurations(t, segs, 2, 2, 1)
	checkPlaylist(t, dir, segs, false, true, 0)
}

// In memory (live) and on disk (recording) must produce the same bytes.
func TestSegmentInMemoryMatchesFiles(t *testing.T) {
	pkts := readPackets(t, fixture(t, "av.flv"))
	dir := t.TempDir()
	files := segmentFiles(t, pkts, SegmenterConfig{Target: 2 * time.Second}, dir)
	mem := segmentAll(t, pkts, SegmenterConfig{Target: 2 * time.Second})
	if len(mem) != len(files) {
		t.Fatalf("%d segments in memory, %d on disk", len(mem), len(files))
	}
	for i, m := range mem {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("seg-%d.ts", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Data, data) || m.Duration != files[i].Duration || m.Size != int64(len(m.Data)) {
			t.Errorf("segment %d differs: %d bytes %.3f s in memory, %d bytes %.3f s on disk",
				i, len(m.Data), m.Duration, len(data), files[i].Duration)
		}
	}
}

// feed writes pkts and collects the segments, Close included.
func feed(t testing.TB, s *Segmenter, pkts ...*media.Packet) []*Segment {
	t.Helper()
	var segs []*Segment
	for _, p := range pkts {
		seg, err := s.WritePacket(p)
		if err != nil {
			t.Fatalf("packet at %d ms: %v", p.Timestamp, err)
		}
		if seg != nil {
			segs = append(segs, seg)
		}
	}
	seg, err := s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if seg != nil {
		segs = append(segs, seg)
	}
	return segs
}

// gop returns one second of 25 fps video starting at ms, keyframe first.
func gop(t *testing.T, ms uint32) []*media.Packet {
	var pkts []*media.Packet
	for i := range uint32(25) {
		if i == 0 {
			pkts = append(pkts, videoFrame(t, ms, true, 0, idrNAL))
		} else {
			pkts = append(pkts, videoFrame(t, ms+i*40, false, 0, sliceNAL))
		}
	}
	return pkts
}

type segSummary struct {
	seq      int
	start    uint32
	duration float64
	disc     bool
}

func summarize(segs []*Segment) []segSummary {
	var out []segSummary
	for _, s := range segs {
		out = append(out, segSummary{s.Seq, s.Start, s.Duration, s.Discontinuity})
	}
	return out
}

func checkSegments(t *testing.T, segs []*Segment, want ...segSummary) {
	t.Helper()
	got := summarize(segs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("segments\n got %v\nwant %v", got, want)
	}
}

func TestSegmenterCutsAtKeyframes(t *testing.T) {
	s := NewSegmenter(SegmenterConfig{Target: 2 * time.Second, FirstSeq: 7})
	pkts := []*media.Packet{
		videoSeqHeader(t, 0, avcRecord),
		videoFrame(t, 0, false, 0, sliceNAL), // before the first keyframe: dropped
	}
	for ms := uint32(40); ms < 5040; ms += 1000 {
		pkts = append(pkts, gop(t, ms)...)
	}
	checkSegments(t, feed(t, s, pkts...),
		segSummary{7, 40, 2, false}, segSummary{8, 2040, 2, false}, segSummary{9, 4040, 1, false})
	if _, err := s.WritePacket(pkts[2]); err == nil {
		t.Error("WritePacket after Close accepted")
	}
}

func TestSegmenterConfigChangeIsDiscontinuity(t *testing.T) {
	s := NewSegmenter(SegmenterConfig{Target: 4 * time.Second})
	other := append([]byte(nil), avcRecord...)
	other[42] ^= 1 // a different PPS
	pkts := []*media.Packet{videoSeqHeader(t, 0, avcRecord), videoSeqHeader(t, 0, avcRecord)}
	pkts = append(pkts, gop(t, 0)...)
	pkts = append(pkts, videoSeqHeader(t, 1000, avcRecord)) // repeated: no change
	pkts = append(pkts, gop(t, 1000)...)
	pkts = append(pkts, videoSeqHeader(t, 2000, other))
	pkts = append(pkts, gop(t, 2000)...)
	checkSegments(t, feed(t, s, pkts...), segSummary{0, 0, 2, false}, segSummary{1, 2000, 1, true})
}

func TestSegmenterTimelineBreak(t *testing.T) {
	s := NewSegmenter(SegmenterConfig{Target: 2 * time.Second})
	pkts := []*media.Packet{videoSeqHeader(t, 0, avcRecord)}
	pkts = append(pkts, gop(t, 5000)...)
	pkts = append(pkts, gop(t, 6000)[:10]...)                 // ends at 6400
	pkts = append(pkts, videoFrame(t, 0, false, 0, sliceNAL)) // encoder restarted: dropped
	pkts = append(pkts, gop(t, 40)...)
	checkSegments(t, feed(t, s, pkts...), segSummary{0, 5000, 1.4, false}, segSummary{1, 40, 1, true})
}

// Break ends the segment at its last frame; the next one starts at a keyframe as a
// discontinuity, though the timestamps go on.
func TestSegmenterBreak(t *testing.T) {
	s := NewSegmenter(SegmenterConfig{Target: 4 * time.Second})
	var segs []*Segment
	write := func(pkts ...*media.Packet) {
		for _, p := range pkts {
			seg, err := s.WritePacket(p)
			if err != nil {
				t.Fatal(err)
			}
			if seg != nil {
				segs = append(segs, seg)
			}
		}
	}
	write(videoSeqHeader(t, 0, avcRecord))
	write(gop(t, 0)...)
	write(gop(t, 1000)[:10]...) // ends at 1400
	seg, err := s.Break()
	if err != nil || seg == nil {
		t.Fatalf("Break: %v, %v", seg, err)
	}
	segs = append(segs, seg)
	if seg, err := s.Break(); seg != nil || err != nil {
		t.Errorf("Break with no open segment: %v, %v", seg, err)
	}
	write(videoFrame(t, 1440, false, 0, sliceNAL)) // not a keyframe: dropped
	write(gop(t, 2000)...)
	if seg, err := s.Close(); err != nil || seg == nil {
		t.Fatalf("Close: %v, %v", seg, err)
	} else {
		segs = append(segs, seg)
	}
	checkSegments(t, segs, segSummary{0, 0, 1.4, false}, segSummary{1, 2000, 1, true})
	if _, err := s.Break(); err == nil {
		t.Error("Break after Close accepted")
	}
}

func TestSegmenterAudioOnlyAndCap(t *testing.T) {
	cfg, _ := media.ParseAACConfig(aacRecord)
	s := NewSegmenter(SegmenterConfig{Target: time.Second, Tracks: Tracks{Audio: cfg}})
	var pkts []*media.Packet
	for i := range 100 { // 2.32 s
		pkts = append(pkts, audioFrame(t, uint32(i*1024*1000/44100), []byte{byte(i)}))
	}
	segs := feed(t, s, pkts...)
	if len(segs) != 3 || segs[0].Start != 0 || segs[1].Start != 1021 || segs[2].Start != 2043 {
		t.Errorf("audio-only segments %v, want cuts at the first frame at or after 1 s", summarize(segs))
	}

	// With a video track that stalls, audio still ends segments at 10 targets.
	avc, _ := media.ParseAVCConfig(avcRecord)
	s = NewSegmenter(SegmenterConfig{Target: 100 * time.Millisecond, Tracks: Tracks{Audio: cfg, Video: avc}})
	pkts = append([]*media.Packet{videoFrame(t, 0, true, 0, idrNAL)}, pkts[1:]...)
	segs = feed(t, s, pkts...)
	if len(segs) < 2 || segs[0].Duration < 1 || segs[0].Duration > 1.03 {
		t.Errorf("stalled video: segments %v, want ended at 1 s", summarize(segs))
	}
}

type failingFile struct {
	bytes.Buffer
	failWrite, failClose bool
}

func (f *failingFile) Write(b []byte) (int, error) {
	if f.failWrite {
		return 0, os.ErrClosed
	}
	return f.Buffer.Write(b)
}

func (f *failingFile) Close() error {
	if f.failClose {
		return os.ErrPermission
	}
	return nil
}

func TestSegmenterAbandonsFailedSegment(t *testing.T) {
	var created []int
	failOn := map[int]*failingFile{}
	s := NewSegmenter(SegmenterConfig{Target: time.Second, Create: func(seq int) (io.WriteCloser, error) {
		created = append(created, seq)
		switch len(created) {
		case 2: // seq 1, first try
			return nil, os.ErrNotExist
		case 3: // seq 1, second try: writes fail
			failOn[seq] = &failingFile{failWrite: true}
			return failOn[seq], nil
		}
		return &failingFile{}, nil
	}})
	var segs []*Segment
	var errs int
	pkts := []*media.Packet{videoSeqHeader(t, 0, avcRecord)}
	for ms := uint32(0); ms < 5000; ms += 1000 {
		pkts = append(pkts, gop(t, ms)...)
	}
	for _, p := range pkts {
		seg, err := s.WritePacket(p)
		if err != nil {
			errs++
		}
		if seg != nil {
			segs = append(segs, seg)
		}
	}
	if seg, err := s.Close(); err != nil || seg == nil {
		t.Fatalf("Close: %v %v", seg, err)
	} else {
		segs = append(segs, seg)
	}
	if errs != 2 {
		t.Errorf("%d errors, want 2 (create, write)", errs)
	}
	// Writes are buffered: the failing writer is found out when its segment is
	// written out at its end (4000), and seq 1 is made again from there.
	if fmt.Sprint(created) != "[0 1 1 1]" {
		t.Errorf("created %v, want seq 1 retried until it works", created)
	}
	checkSegments(t, segs, segSummary{0, 0, 1, false}, segSummary{1, 4000, 1.04, true})
}
