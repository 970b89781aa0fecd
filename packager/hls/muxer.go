// Package hls packages a media.Packet stream as MPEG-TS segments and renders HLS
// playlists. The same code serves live HLS (segments kept in memory, 2 s target,
// sliding window) and recording (segments written to files, 4 s target, VOD playlist),
// so that what a viewer watches live and what is replayed later are muxed alike.
package hls

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/livetape/livetape/media"
)

// PIDs of the elementary streams. They are fixed, not allocated in order of
// appearance, so that every segment of a stream (and of every stream) uses the same
// PIDs even when a track is only learned midway.
const (
	VideoPID uint16 = 0x100
	AudioPID uint16 = 0x101
)

// ErrUnsupportedCodec is returned for video other than H.264 and audio other than
// AAC: MPEG-TS could carry more, but HLS players are only guaranteed these two.
var ErrUnsupportedCodec = errors.New("hls: unsupported codec (only H.264 video and AAC audio)")

// Tracks are the elementary streams of a transport stream; a track is present when its
// configuration is non-nil. Knowing them up front (from the GOP cache, say) lets the
// first PMT list both; otherwise they are learned from sequence headers.
type Tracks struct {
	Video *media.AVCConfig
	Audio *media.AACConfig
}

// Audio grouping: several ADTS frames share one PES, which saves a PES header and the
// stuffing of a partly filled TS packet per frame (about a fifth of the audio bytes at
// 128 kb/s). A group spans less than audioGroupSpan so that, when audio carries the
// PCR, PCRs stay within the 100 ms that ISO/IEC 13818-1 2.7.2 asks for; maxAudioPES is
// ffmpeg's default PES payload size.
const (
	audioGroupSpan = 80 // ms
	maxAudioPES    = 2930
	maxADTSFrame   = 1<<13 - 1 // aac_frame_length is 13 bits, header included
)

// Muxer writes media packets as an MPEG-TS stream: H.264 in Annex B with access unit
// delimiters and parameter sets before each IDR, AAC in ADTS. Sequence headers update
// the codec configuration; data packets are ignored. A Muxer is not safe for
// concurrent use.
//
// The output goes to one writer at a time, with one Write call per PES, so that a file
// or a network connection behind it sees few, large writes. StartSegment switches the
// writer and makes the next bytes a PAT and a PMT, so each segment can be decoded on
// its own; continuity counters carry on across segments, as in one long stream.
//
// A packet error (unsupported codec, malformed payload) skips that packet and leaves
// the Muxer usable; a write error leaves the current segment truncated.
type Muxer struct {
	w    io.Writer
	n    int64 // bytes written to w
	werr error // the first error of w, which leaves the segment unusable
	ts   tsWriter

	tracks     Tracks
	hasES      [2]bool // video, audio in the PMT
	pcrPID     uint16
	lengthSize int // bytes of the AVCC NAL unit length prefix

	// A PAT and a PMT go before the first PES of a segment, after a PMT change
	// (needTables) and before every PES on the PCR PID with random_access_indicator
	// set (keyframes), so that a player can start there.
	needTables bool
	audioRAI   bool // the next audio PES is the first of its segment

	pes pesInfo // the PES being written, reused

	aac        []byte // pending ADTS frames of one PES
	aacTS      uint32 // timestamp of the first pending frame
	aacN       int    // number of pending frames
	aacFrameUS int64  // frame duration in µs, to tell gaps in the audio from jitter
}

// scratch holds the buffers a muxer needs only while it writes one PES: the Annex B
// access unit and the TS packets of the PES. They are shared by every muxer of the
// process instead of kept by each (a node muxes twice per stream, live and recorded,
// and each buffer grows to a keyframe): memory then follows the muxers at work at a
// time, about one per CPU, not the number of streams.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// maxScratch is the largest buffer put back in scratch; a bigger one (a huge keyframe)
// is left to the garbage collector.
const maxScratch = 1 << 20

func getScratch() *[]byte { return scratch.Get().(*[]byte) }

func putScratch(b *[]byte, buf []byte) {
	if cap(buf) > maxScratch {
		return
	}
	*b = buf[:0]
	scratch.Put(b)
}

// NewMuxer returns a Muxer writing to w. tracks may be empty: tracks are then added as
// their sequence headers arrive.
func NewMuxer(w io.Writer, tracks Tracks) *Muxer {
	m := &Muxer{w: w, needTables: true, audioRAI: true, lengthSize: 4}
	if tracks.Video != nil {
		m.setVideo(tracks.Video)
	}
	if tracks.Audio != nil {
		m.setAudio(tracks.Audio)
	}
	return m
}

// Tracks returns the current codec configurations.
func (m *Muxer) Tracks() Tracks { return m.tracks }

// StartSegment writes any pending audio to the current writer, then directs the output
// to w; the next PES is preceded by a PAT and a PMT. An error is the current writer's:
// the switch to w happens regardless.
func (m *Muxer) StartSegment(w io.Writer) error {
	err := m.Flush()
	m.w, m.n, m.werr = w, 0, nil
	m.needTables, m.audioRAI = true, true
	return err
}

// Flush writes the audio frames held back for grouping.
func (m *Muxer) Flush() error {
	if m.aacN == 0 {
		return nil
	}
	ts := int64(m.aacTS)
	md := m.pes.fill(AudioPID, 0xC0, m.aac, ts, ts, true, m.audioRAI, m.pcrPID == AudioPID)
	m.aac, m.aacN = m.aac[:0], 0
	m.audioRAI = false
	return m.writePES(md)
}

// fill describes a PES of streamID on pid carrying data at pts and dts (ms), with an
// adaptation field when withAF (random access indicator rai, PCR = DTS when pcr:
// HLS players clock playback from PTS, and holding PCR back would need a timestamp
// offset that recordings should not carry).
func (s *pesInfo) fill(pid uint16, streamID uint8, data []byte, pts, dts int64, withAF, rai, pcr bool) *pesInfo {
	*s = pesInfo{pid: pid, streamID: streamID, data: data, pts: pts, dts: dts, withAF: withAF, rai: withAF && rai, withPCR: withAF && pcr}
	return s
}

// WritePacket muxes one packet.
func (m *Muxer) WritePacket(p *media.Packet) error {
	switch {
	case p.Kind == media.KindData:
		return nil
	case p.SequenceHeader:
		_, err := m.setConfig(p)
		return err
	case p.Kind == media.KindVideo:
		return m.writeVideo(p)
	case p.Kind == media.KindAudio:
		return m.writeAudio(p)
	}
	return nil
}

// setConfig applies a sequence header and reports whether the configuration differs
// from the one in use (or is the first of its track).
func (m *Muxer) setConfig(p *media.Packet) (bool, error) {
	if err := checkCodec(p); err != nil {
		return false, err
	}
	switch p.Kind {
	case media.KindVideo:
		c, err := media.ParseAVCConfig(p.Payload())
		if err != nil {
			return false, fmt.Errorf("hls: video sequence header at %d ms: %w", p.Timestamp, err)
		}
		if c.Equal(m.tracks.Video) {
			return false, nil
		}
		m.setVideo(c)
	case media.KindAudio:
		c, err := media.ParseAACConfig(p.Payload())
		if err != nil {
			return false, fmt.Errorf("hls: audio sequence header at %d ms: %w", p.Timestamp, err)
		}
		if c.Equal(m.tracks.Audio) {
			return false, nil
		}
		m.setAudio(c) // pending frames keep the ADTS headers of the old config
	}
	return true, nil
}

func (m *Muxer) setVideo(c *media.AVCConfig) {
	m.tracks.Video = c
	m.lengthSize = 4
	if len(c.Record) > 4 {
		m.lengthSize = int(c.Record[4]&3) + 1 // lengthSizeMinusOne
	}
	m.addES(0, VideoPID, streamTypeH264)
}

func (m *Muxer) setAudio(c *media.AACConfig) {
	m.tracks.Audio = c
	m.aacFrameUS = int64(c.FrameLength) * 1e6 / int64(c.SampleRate)
	m.addES(1, AudioPID, streamTypeAAC)
}

// addES puts a track in the PMT the first time it is seen and keeps the PCR on video
// when there is video: players lock to the PCR, and video is the denser stream.
func (m *Muxer) addES(i int, pid uint16, streamType byte) {
	if m.hasES[i] {
		return
	}
	m.hasES[i] = true
	m.ts.addStream(pid, streamType)
	pcr := AudioPID
	if m.hasES[0] {
		pcr = VideoPID
	}
	if pcr != m.pcrPID {
		m.pcrPID = pcr
		m.ts.setPCRPID(pcr)
	}
	m.needTables = true // a changed PMT goes out before the next PES
}

func checkCodec(p *media.Packet) error {
	switch {
	case p.Kind == media.KindVideo && p.VideoCodec() != media.VideoCodecAVC:
		return fmt.Errorf("%w: video codec id %d", ErrUnsupportedCodec, p.VideoCodec())
	case p.Kind == media.KindAudio && p.AudioFormat() != media.AudioFormatAAC:
		return fmt.Errorf("%w: audio format %d", ErrUnsupportedCodec, p.AudioFormat())
	}
	return nil
}

// canWrite tells whether p would produce output: media of a supported codec whose
// configuration is known. Media before its sequence header cannot be described in a
// PMT (and AAC cannot get ADTS headers), so it is dropped.
func (m *Muxer) canWrite(p *media.Packet) (bool, error) {
	if p.Kind == media.KindData || p.SequenceHeader {
		return false, nil
	}
	if err := checkCodec(p); err != nil {
		return false, err
	}
	if len(p.Payload()) == 0 {
		return false, nil
	}
	if p.Kind == media.KindVideo {
		// AVCPacketType 1 is NAL units; 2, end of sequence, carries no picture.
		return m.tracks.Video != nil && p.Body()[1] == 1, nil
	}
	return m.tracks.Audio != nil, nil
}

// NAL unit types (ITU-T H.264 table 7-1).
const (
	nalIDR = 5
	nalSPS = 7
	nalAUD = 9
)

var startCode = []byte{0, 0, 0, 1}

// annexB converts an AVCC access unit to Annex B: an access unit delimiter first (some
// decoders, Apple's among them, need one to find frame boundaries in TS), then, for a
// keyframe without parameter sets of its own, the SPS and PPS so that decoding can
// start at any IDR, then the NAL units with start codes.
// au is appended to from au[:0].
func (m *Muxer) annexB(au, data []byte, keyframe bool) ([]byte, error) {
	hasSPS := false
	for rest := data; len(rest) > 0; {
		nal, next, err := m.nextNAL(rest)
		if err != nil {
			return nil, err
		}
		switch nal[0] & 0x1f {
		case nalSPS:
			hasSPS = true
		case nalIDR:
			keyframe = true
		}
		rest = next
	}
	au = append(au[:0], 0, 0, 0, 1, nalAUD, 0xF0) // primary_pic_type 7: any slice type
	if keyframe && !hasSPS {
		for _, ps := range [][][]byte{m.tracks.Video.SPS, m.tracks.Video.PPS} {
			for _, nal := range ps {
				au = append(append(au, startCode...), nal...)
			}
		}
	}
	for rest := data; len(rest) > 0; {
		nal, next, _ := m.nextNAL(rest) // validated above
		if nal[0]&0x1f != nalAUD {      // ours replaces any the encoder put in
			au = append(append(au, startCode...), nal...)
		}
		rest = next
	}
	return au, nil
}

func (m *Muxer) nextNAL(b []byte) (nal, rest []byte, err error) {
	if len(b) < m.lengthSize {
		return nil, nil, fmt.Errorf("hls: truncated AVC NAL unit length (%d bytes left)", len(b))
	}
	n := 0
	for _, c := range b[:m.lengthSize] {
		n = n<<8 | int(c)
	}
	b = b[m.lengthSize:]
	if n == 0 || n > len(b) {
		return nil, nil, fmt.Errorf("hls: AVC NAL unit length %d with %d bytes left", n, len(b))
	}
	return b[:n], b[n:], nil
}

func (m *Muxer) writeVideo(p *media.Packet) error {
	if ok, err := m.canWrite(p); !ok {
		return err
	}
	buf := getScratch()
	au, err := m.annexB(*buf, p.Payload(), p.Keyframe)
	defer func() { putScratch(buf, au) }()
	if err != nil {
		return fmt.Errorf("%w (video at %d ms)", err, p.Timestamp)
	}
	dts := int64(p.Timestamp)
	pts := dts + int64(p.CompositionTime)
	if pts < dts { // negative composition times are invalid in TS (PTS >= DTS)
		pts = dts
	}
	withAF := p.Keyframe || m.pcrPID == VideoPID
	return m.writePES(m.pes.fill(VideoPID, 0xE0, au, pts, dts, withAF, p.Keyframe, m.pcrPID == VideoPID))
}

func (m *Muxer) writeAudio(p *media.Packet) error {
	if ok, err := m.canWrite(p); !ok {
		return err
	}
	raw := p.Payload()
	if len(raw)+7 > maxADTSFrame {
		return fmt.Errorf("hls: AAC frame of %d bytes at %d ms does not fit ADTS", len(raw), p.Timestamp)
	}
	if m.aacN > 0 {
		// Frames in a PES are timed by the PES PTS plus their rank, so a gap in
		// the timestamps, a group too long or too big starts a new PES.
		sinceFirst := int64(p.Timestamp) - int64(m.aacTS)
		expected := int64(m.aacN) * m.aacFrameUS / 1000
		if sinceFirst >= audioGroupSpan || sinceFirst-expected > 2 || expected-sinceFirst > 2 ||
			len(m.aac)+7+len(raw) > maxAudioPES {
			if err := m.Flush(); err != nil {
				return err
			}
		}
	}
	if m.aacN == 0 {
		m.aacTS = p.Timestamp
	}
	h := m.tracks.Audio.ADTSHeader(len(raw))
	m.aac = append(append(m.aac, h[:]...), raw...)
	m.aacN++
	return nil
}

// writePES writes one PES, preceded by a PAT and a PMT where they are due (see
// needTables).
func (m *Muxer) writePES(p *pesInfo) error {
	buf := getScratch()
	out := *buf
	if m.needTables || (p.rai && p.pid == m.ts.pcrPID) {
		out = m.ts.appendTables(out)
		m.needTables = false
	}
	out = m.ts.appendPES(out, p)
	p.data = nil             // it may be a scratch buffer, back in the pool soon
	n, err := m.w.Write(out) // w gets the PES (and the tables before it) in one call
	m.n += int64(n)
	putScratch(buf, out)
	if err != nil {
		if m.werr == nil {
			m.werr = err
		}
		return fmt.Errorf("hls: write: %w", err)
	}
	return nil
}

// discardAudio drops the audio frames held back for grouping (of an abandoned segment).
func (m *Muxer) discardAudio() { m.aac, m.aacN = m.aac[:0], 0 }

// clock90k converts milliseconds to the 33-bit 90 kHz clock of PTS, DTS and PCR base,
// wrapping as the 33-bit field does (every 26.5 hours).
func clock90k(ms int64) int64 { return ms * 90 & (1<<33 - 1) }
