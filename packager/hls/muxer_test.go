package hls

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/asticode/go-astits"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
)

// A 1280x720 High@3.1 AVCDecoderConfigurationRecord as x264 emits it.
var avcRecord = []byte{
	0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
	0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
	0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
}

// AAC-LC, 44.1 kHz, stereo.
var aacRecord = []byte{0x12, 0x10}

func mustPacket(t testing.TB, kind media.Kind, ts uint32, body []byte) *media.Packet {
	t.Helper()
	p, err := media.NewPacket(kind, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func videoSeqHeader(t testing.TB, ts uint32, record []byte) *media.Packet {
	return mustPacket(t, media.KindVideo, ts, append([]byte{0x17, 0, 0, 0, 0}, record...))
}

// videoFrame builds an AVC video packet from NAL units (4-byte AVCC lengths).
func videoFrame(t testing.TB, ts uint32, key bool, ct int32, nals ...[]byte) *media.Packet {
	b := []byte{0x27, 1, byte(ct >> 16), byte(ct >> 8), byte(ct)}
	if key {
		b[0] = 0x17
	}
	for _, n := range nals {
		b = append(b, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return mustPacket(t, media.KindVideo, ts, b)
}

func audioSeqHeader(t testing.TB, ts uint32, record []byte) *media.Packet {
	return mustPacket(t, media.KindAudio, ts, append([]byte{0xaf, 0}, record...))
}

func audioFrame(t testing.TB, ts uint32, raw []byte) *media.Packet {
	return mustPacket(t, media.KindAudio, ts, append([]byte{0xaf, 1}, raw...))
}

var (
	idrNAL   = []byte{0x65, 0x88, 0x84, 0x00, 0x33}
	sliceNAL = []byte{0x41, 0x9a, 0x02, 0x03}
	audNAL   = []byte{0x09, 0x10}
	seiNAL   = []byte{0x06, 0x05, 0x01, 0xff, 0x80}
)

// pid returns the PID of the TS packet at the start of ts.
func pid(ts []byte) uint16 { return uint16(ts[1]&0x1f)<<8 | uint16(ts[2]) }

type demuxed struct {
	pat  bool
	pmt  *astits.PMTData
	pes  []*astits.DemuxerData
	pids []uint16 // PID of each TS packet, in order
}

func demux(t *testing.T, ts []byte) *demuxed {
	t.Helper()
	if len(ts)%188 != 0 {
		t.Fatalf("%d bytes: not whole TS packets", len(ts))
	}
	var d demuxed
	for i := 0; i < len(ts); i += 188 {
		d.pids = append(d.pids, pid(ts[i:]))
	}
	dmx := astits.NewDemuxer(context.Background(), bytes.NewReader(ts))
	for {
		data, err := dmx.NextData()
		if errors.Is(err, astits.ErrNoMorePackets) {
			return &d
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case data.PAT != nil:
			d.pat = true
		case data.PMT != nil:
			d.pmt = data.PMT
		case data.PES != nil:
			d.pes = append(d.pes, data)
		}
	}
}

func TestMuxerAnnexBAndTimestamps(t *testing.T) {
	var seg1, seg2 bytes.Buffer
	m := NewMuxer(&seg1, Tracks{})
	for _, p := range []*media.Packet{
		mustPacket(t, media.KindData, 0, []byte{2, 0, 1, 'x'}),
		videoSeqHeader(t, 0, avcRecord),
		audioSeqHeader(t, 0, aacRecord),
		videoFrame(t, 0, true, 80, audNAL, seiNAL, idrNAL),
		audioFrame(t, 0, []byte{1, 2, 3}),
		audioFrame(t, 23, []byte{4, 5}),
		videoFrame(t, 40, false, 40, sliceNAL),
	} {
		if err := m.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.StartSegment(&seg2); err != nil {
		t.Fatal(err)
	}
	if err := m.WritePacket(videoFrame(t, 1000, true, 0, idrNAL)); err != nil {
		t.Fatal(err)
	}

	d := demux(t, seg1.Bytes())
	if d.pids[0] != 0 || d.pids[1] != 0x1000 {
		t.Errorf("segment starts with PIDs %#x, want PAT then PMT", d.pids[:2])
	}
	if d.pmt == nil || d.pmt.PCRPID != VideoPID || len(d.pmt.ElementaryStreams) != 2 {
		t.Fatalf("PMT %+v, want 2 streams, PCR on video", d.pmt)
	}
	for _, es := range d.pmt.ElementaryStreams {
		if want := map[uint16]astits.StreamType{VideoPID: 0x1B, AudioPID: 0x0F}[es.ElementaryPID]; es.StreamType != want {
			t.Errorf("PID %#x: stream type %#x, want %#x", es.ElementaryPID, es.StreamType, want)
		}
	}
	if len(d.pes) != 3 {
		t.Fatalf("%d PES, want key frame, inter frame, audio (flushed by StartSegment)", len(d.pes))
	}

	key := d.pes[0]
	sps, pps := []byte{0, 0, 0, 1, 0x67}, []byte{0, 0, 0, 1, 0x68}
	wantAU := append([]byte{0, 0, 0, 1, 9, 0xf0}, sps...)
	if !bytes.HasPrefix(key.PES.Data, wantAU) || !bytes.Contains(key.PES.Data, pps) {
		t.Errorf("keyframe does not start with AUD, SPS, PPS: % x", key.PES.Data[:16])
	}
	wantTail := append(append(append([]byte{0, 0, 0, 1}, seiNAL...), 0, 0, 0, 1), idrNAL...)
	if !bytes.HasSuffix(key.PES.Data, wantTail) || bytes.Count(key.PES.Data, []byte{0, 0, 1, 9}) != 1 {
		t.Errorf("keyframe NAL units: % x (want one AUD, SEI and IDR kept)", key.PES.Data)
	}
	checkPES(t, "keyframe", key, 80*90, 0, true, true)
	inter := d.pes[1]
	if !bytes.Equal(inter.PES.Data, []byte{0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x41, 0x9a, 2, 3}) {
		t.Errorf("inter frame: % x, want AUD and slice only", inter.PES.Data)
	}
	checkPES(t, "inter frame", inter, 80*90, 40*90, false, true)

	audio := d.pes[2]
	cfg, _ := media.ParseAACConfig(aacRecord)
	h1, h2 := cfg.ADTSHeader(3), cfg.ADTSHeader(2)
	want := append(append(append(h1[:], 1, 2, 3), h2[:]...), 4, 5)
	if audio.PID != AudioPID || !bytes.Equal(audio.PES.Data, want) {
		t.Errorf("audio PES on %#x: % x, want two ADTS frames % x", audio.PID, audio.PES.Data, want)
	}
	checkPES(t, "audio", audio, 0, -1, true, false)

	d2 := demux(t, seg2.Bytes())
	if !d2.pat || d2.pmt == nil || d2.pids[0] != 0 || len(d2.pes) != 1 {
		t.Fatalf("second segment: PAT %v, PMT %v, %d PES", d2.pat, d2.pmt, len(d2.pes))
	}
	if !bytes.HasPrefix(d2.pes[0].PES.Data, wantAU) {
		t.Errorf("IDR in second segment lacks AUD+SPS: % x", d2.pes[0].PES.Data)
	}
}

// checkPES checks timestamps (90 kHz; dts -1 for none) and adaptation field flags.
func checkPES(t *testing.T, name string, d *astits.DemuxerData, pts, dts int64, rai, pcr bool) {
	t.Helper()
	oh := d.PES.Header.OptionalHeader
	if oh.PTS == nil || oh.PTS.Base != pts {
		t.Errorf("%s: PTS %v, want %d", name, oh.PTS, pts)
	}
	switch {
	case dts < 0 && oh.DTS != nil:
		t.Errorf("%s: DTS %d, want none", name, oh.DTS.Base)
	case dts >= 0 && (oh.DTS == nil && pts != dts || oh.DTS != nil && oh.DTS.Base != dts):
		t.Errorf("%s: DTS %v, want %d", name, oh.DTS, dts)
	}
	af := d.FirstPacket.AdaptationField
	if got := af != nil && af.RandomAccessIndicator; got != rai {
		t.Errorf("%s: random_access_indicator %v, want %v", name, got, rai)
	}
	if got := af != nil && af.HasPCR; got != pcr {
		t.Errorf("%s: PCR %v, want %v", name, got, pcr)
	} else if pcr && dts >= 0 && af.PCR.Base != dts {
		t.Errorf("%s: PCR %d, want DTS %d", name, af.PCR.Base, dts)
	}
}

func TestMuxerAudioOnlyCarriesPCR(t *testing.T) {
	var b bytes.Buffer
	cfg, _ := media.ParseAACConfig(aacRecord)
	m := NewMuxer(&b, Tracks{Audio: cfg})
	// 10 frames of 23 ms: grouped while a group spans less than 80 ms.
	for i := range 10 {
		if err := m.WritePacket(audioFrame(t, uint32(i*1024*1000/44100), []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	d := demux(t, b.Bytes())
	if d.pmt == nil || d.pmt.PCRPID != AudioPID || len(d.pmt.ElementaryStreams) != 1 {
		t.Fatalf("PMT %+v, want audio only with the PCR", d.pmt)
	}
	if len(d.pes) != 3 {
		t.Fatalf("%d PES, want 4+4+2 frames", len(d.pes))
	}
	for i, p := range d.pes {
		checkPES(t, "audio", p, int64([]int{0, 92, 185}[i]*90), -1, i == 0, true)
	}
	if n := bytes.Count(b.Bytes(), []byte{0x47, 0x40, 0x00}); n != 1 {
		t.Errorf("%d PATs, want 1 (tables are per segment and IDR, not per audio PES)", n)
	}
}

func TestMuxerLearnsTrackMidStream(t *testing.T) {
	var b bytes.Buffer
	m := NewMuxer(&b, Tracks{})
	for _, p := range []*media.Packet{
		audioFrame(t, 0, []byte{1}), // before its sequence header: dropped
		videoSeqHeader(t, 0, avcRecord),
		videoFrame(t, 0, true, 0, idrNAL),
		audioSeqHeader(t, 10, aacRecord),
		audioFrame(t, 10, []byte{2}),
	} {
		if err := m.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	d := demux(t, b.Bytes())
	if d.pmt == nil || len(d.pmt.ElementaryStreams) != 2 || len(d.pes) != 2 {
		t.Fatalf("PMT %+v and %d PES, want the audio track added", d.pmt, len(d.pes))
	}
	// The updated PMT precedes the first audio PES.
	var sawPMT bool
	for i, p := range d.pids {
		if i > 2 && p == 0x1000 {
			sawPMT = true
		}
		if p == AudioPID && !sawPMT {
			t.Fatal("audio PES before the PMT that lists it")
		}
	}
}

func TestMuxerPacketErrors(t *testing.T) {
	var b bytes.Buffer
	avc, _ := media.ParseAVCConfig(avcRecord)
	m := NewMuxer(&b, Tracks{Video: avc})
	hevc := mustPacket(t, media.KindVideo, 0, []byte{0x1c, 1, 0, 0, 0, 0, 0, 0, 1, 0x40})
	if err := m.WritePacket(hevc); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("HEVC: err = %v, want ErrUnsupportedCodec", err)
	}
	mp3 := mustPacket(t, media.KindAudio, 0, []byte{0x2f, 0xff, 0xfb})
	if err := m.WritePacket(mp3); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("MP3: err = %v, want ErrUnsupportedCodec", err)
	}
	bad := mustPacket(t, media.KindVideo, 0, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65})
	if err := m.WritePacket(bad); err == nil {
		t.Error("NAL unit length beyond the packet accepted")
	}
	if b.Len() != 0 {
		t.Errorf("%d bytes written for rejected packets", b.Len())
	}
	if err := m.WritePacket(videoFrame(t, 0, true, 0, idrNAL)); err != nil || b.Len() == 0 {
		t.Errorf("muxer unusable after packet errors: %v", err)
	}
}

// TestMuxersShareScratch checks that a muxer keeps no keyframe-sized buffer between
// packets: a node runs two muxers per stream, and per-muxer buffers grown to the
// largest keyframe made memory grow with the number of streams.
func TestMuxersShareScratch(t *testing.T) {
	const muxers, keyframe = 64, 256 << 10
	nal := append([]byte{0x65}, bytes.Repeat([]byte{0xAB}, keyframe)...)
	before := mediatest.HeapAfterGC()
	var out countWriter
	ms := make([]*Muxer, muxers)
	for i := range ms {
		ms[i] = NewMuxer(&out, Tracks{})
		for _, p := range []*media.Packet{
			videoSeqHeader(t, 0, avcRecord),
			videoFrame(t, 0, true, 0, nal),
			videoFrame(t, 40, false, 0, sliceNAL),
		} {
			if err := ms[i].WritePacket(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	kept := mediatest.HeapAfterGC() - before
	runtime.KeepAlive(ms)
	if out.n < muxers*keyframe {
		t.Fatalf("muxers wrote %d bytes, want at least %d", out.n, muxers*keyframe)
	}
	// Each muxer holding its keyframe would keep 64 × 256 KiB = 16 MiB (twice that with
	// the TS packets); shared, the muxers keep their small state and the pool at most a
	// few buffers.
	if limit := int64(muxers * keyframe / 4); kept > limit {
		t.Errorf("%d muxers keep %d KiB after writing %d KiB keyframes, want under %d KiB", muxers, kept>>10, keyframe>>10, limit>>10)
	}
}

type countWriter struct{ n int }

func (w *countWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }
