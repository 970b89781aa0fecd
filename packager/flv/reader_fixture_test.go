package flv

import (
	"io"
	"os"
	"slices"
	"testing"

	"github.com/livetape/livetape/media"
)

// readFixture reads every packet of a testdata FLV file, with the file offset of each.
func readFixture(t *testing.T, name string) (r *Reader, pkts []*media.Packet, offsets []int64, size int64) {
	t.Helper()
	f, err := os.Open("../../testdata/" + name)
	if err != nil {
		t.Fatalf("%v (run testdata/make-fixtures.sh)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, err = NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		off := r.Offset
		p, err := r.ReadPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: packet %d at offset %d: %v", name, len(pkts), off, err)
		}
		pkts = append(pkts, p)
		offsets = append(offsets, off)
	}
	return r, pkts, offsets, st.Size()
}

// isAVCFrame reports whether p is an AVC NALU packet: not a sequence header and not
// the end-of-sequence marker ffmpeg writes last, which is also flagged as a keyframe.
func isAVCFrame(p *media.Packet) bool {
	b := p.Body()
	return p.Kind == media.KindVideo && p.VideoCodec() == media.VideoCodecAVC && len(b) >= 5 && b[1] == 1
}

// TestReaderFixtureAV reads an ffmpeg-made file end to end: it checks the reader against
// a muxer other than our own, and pins the properties other packages' tests rely on.
func TestReaderFixtureAV(t *testing.T) {
	r, pkts, offsets, size := readFixture(t, "av.flv")
	if r.Flags != FlagAudio|FlagVideo {
		t.Errorf("header flags %#x, want audio|video", r.Flags)
	}
	if r.Offset != size {
		t.Errorf("reader stopped at offset %d of %d", r.Offset, size)
	}

	var (
		firstVideo, firstAudio *media.Packet
		keyTimes               []uint32
		keyOffsets             []float64
		nonZeroCT              bool
		meta                   *Metadata
		counts                 = map[media.Kind]int{}
	)
	for i, p := range pkts {
		counts[p.Kind]++
		switch p.Kind {
		case media.KindVideo:
			if firstVideo == nil {
				firstVideo = p
			}
			if isAVCFrame(p) && p.Keyframe {
				keyTimes = append(keyTimes, p.Timestamp)
				keyOffsets = append(keyOffsets, float64(offsets[i]))
			}
			nonZeroCT = nonZeroCT || p.CompositionTime != 0
		case media.KindAudio:
			if firstAudio == nil {
				firstAudio = p
			}
		case media.KindData:
			name, m, err := ParseScriptData(p.Body())
			if err != nil || name != OnMetaData {
				t.Fatalf("script tag %q: %v", name, err)
			}
			meta = m
		}
	}
	if counts[media.KindVideo] < 100 || counts[media.KindAudio] < 100 {
		t.Errorf("packet counts %v, want ~100 video frames and ~170 AAC frames", counts)
	}
	if firstVideo == nil || !firstVideo.SequenceHeader || firstVideo.VideoCodec() != media.VideoCodecAVC {
		t.Errorf("first video packet is not an AVC sequence header: %+v", firstVideo)
	}
	if firstAudio == nil || !firstAudio.SequenceHeader || firstAudio.AudioFormat() != media.AudioFormatAAC {
		t.Errorf("first audio packet is not an AAC sequence header: %+v", firstAudio)
	}
	if !nonZeroCT {
		t.Error("no video packet has a composition time; the fixture should have B-frames")
	}

	if len(keyTimes) != 4 {
		t.Errorf("keyframes at %v ms, want 4 (one per second of a 4 s file)", keyTimes)
	}
	for i := 1; i < len(keyTimes); i++ {
		if d := keyTimes[i] - keyTimes[i-1]; d < 960 || d > 1040 {
			t.Errorf("keyframes at %v ms: gap %d ms, want ~1000", keyTimes, d)
		}
	}

	if meta == nil {
		t.Fatal("no onMetaData")
	}
	if meta.Width != 320 || meta.Height != 240 {
		t.Errorf("metadata %vx%v, want 320x240", meta.Width, meta.Height)
	}
	// ffmpeg's keyframe index must point at the tags where our reader found them:
	// the recorder writes the same index from Reader-style offsets.
	if meta.Keyframes == nil || !slices.Equal(meta.Keyframes.FilePositions, keyOffsets) {
		t.Errorf("metadata keyframe positions %v, reader found keyframes at %v", meta.Keyframes, keyOffsets)
	}
}

// TestReaderFixtureSingleTrack checks the video-only and audio-only fixtures carry
// exactly the track they claim.
func TestReaderFixtureSingleTrack(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags byte
		kind  media.Kind
		width float64
	}{
		{"video720.flv", FlagVideo, media.KindVideo, 1280},
		{"audio.flv", FlagAudio, media.KindAudio, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, pkts, _, _ := readFixture(t, tt.name)
			if r.Flags != tt.flags {
				t.Errorf("header flags %#x, want %#x", r.Flags, tt.flags)
			}
			for _, p := range pkts {
				switch p.Kind {
				case tt.kind:
				case media.KindData:
					if _, m, err := ParseScriptData(p.Body()); err != nil || m.Width != tt.width {
						t.Errorf("metadata %+v, %v: want width %v", m, err, tt.width)
					}
				default:
					t.Fatalf("unexpected %v packet at %d ms", p.Kind, p.Timestamp)
				}
			}
		})
	}
}
