package fmp4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/wbuf"
)

// VideoTimescale is the media timescale of video tracks: 90 kHz, the MPEG clock, in
// which every millisecond timestamp of an FLV/RTMP packet is exact.
const VideoTimescale = 90000

// defaultFrameDuration is the duration given to a lone last video frame when no frame
// before it says how long frames last (1/25 s).
const defaultFrameDuration = VideoTimescale / 25

// Errors callers branch on.
var (
	// ErrCodecChange is returned by WritePacket when a packet's codec or sequence
	// header differs from the writer's tracks: an MP4 file has one configuration per
	// track, so the caller closes this file and starts a new one.
	ErrCodecChange = errors.New("fmp4: codec configuration changed")
	// ErrClosed is returned by calls on a closed Writer.
	ErrClosed = errors.New("fmp4: writer closed")
)

// Tracks are the codec configurations of a recording, taken from its sequence headers.
// Either may be nil (audio-only or video-only), not both.
type Tracks struct {
	Video *media.AVCConfig
	Audio *media.AACConfig
}

// Writer writes a fragmented MP4 to an io.Writer as packets arrive.
//
// The init segment (ftyp + moov) is written by NewWriter. Media is written only by
// Flush and Close, one moof+mdat fragment per call, so the caller decides how much a
// crash can lose: Writer never flushes on its own. The recorder flushes at every video
// keyframe and whenever Pending reaches one second, then fsyncs the file. Flush after
// WritePacket of the keyframe, not before: the keyframe is then the sample held back,
// and it opens the next fragment, so every fragment starts with a keyframe.
//
// Timestamps are shifted so that the earliest sample of the recording is at 0; the same
// shift applies to both tracks, which keeps them in sync. Each sample's decode time
// comes from its own timestamp (anchored), never from a sum of durations, so the MP4
// keeps the timeline of the push, and of its FLV and HLS recordings, whatever the
// publisher's timestamps do:
//
//   - A sample's duration is the distance to the next sample's decode time, so the
//     newest sample of each track is held back until the next one arrives (or Close).
//   - A timestamp repeated or going backwards cannot be a decode time (they must
//     increase): the sample is placed one tick after the previous one, and the next
//     forward timestamp anchors the track again, so the ticks lent are taken back.
//   - A forward jump is a gap: the sample before it lasts until the jump's end, as
//     the frame before it does in FLV and HLS.
//   - An AAC frame's timestamp, rounded to the millisecond, cannot say where the frame
//     starts (1024/44100 s is 23.22 ms): a frame within a millisecond of where the
//     previous one ends is placed there, so clean audio gets exact 1024-sample
//     durations and the track still never strays more than a millisecond from the
//     pushed timestamps, however long the recording.
//   - The last sample lasts as long as the last forward step between two timestamps of
//     its track (as FLV finalizing and the HLS segmenter count it), one AAC frame for
//     audio, 1/25 s for a lone video frame.
//   - Composition time offsets are the packets' own, converted exactly.
//
// Writer is not safe for concurrent use.
type Writer struct {
	bw           *wbuf.Writer // holds a buffer only while a fragment is written
	tracks       Tracks
	video, audio *track
	seq          uint32 // last fragment sequence number written
	base         int64  // milliseconds subtracted from every DTS, fixed at the first flush
	baseSet      bool
	err          error // sticky: the first write error
	closed       bool
}

// sample is a packet waiting to be written; data points into the packet (packets are
// immutable), so nothing is copied until the fragment is encoded.
type sample struct {
	data []byte
	dts  int64 // milliseconds, as received
	ct   int32 // composition time offset, milliseconds
	key  bool
}

type track struct {
	id        uint32
	timescale uint32
	audio     bool
	frameLen  int64    // AAC samples per frame
	queue     []sample // unflushed samples, oldest first; the last one is held back
	started   bool     // a sample has been written (next is valid)
	next      uint64   // decode time of queue[0], in timescale units
	queued    bool     // a sample has been queued (lastMS is valid)
	lastMS    int64    // timestamp of the newest sample queued
	stepMS    int64    // the last forward step between two timestamps: the last sample's duration
	keySeen   bool     // video: a keyframe has arrived (earlier frames cannot be decoded)
}

// NewWriter writes the init segment for tracks to w and returns a Writer for their
// packets. w receives large writes only (the Writer buffers); it is not closed by Close.
func NewWriter(w io.Writer, tracks Tracks) (*Writer, error) {
	if tracks.Video == nil && tracks.Audio == nil {
		return nil, errors.New("fmp4: no track")
	}
	init, err := newInit(tracks)
	if err != nil {
		return nil, err
	}
	wr := &Writer{bw: wbuf.New(w), tracks: tracks}
	for _, trak := range init.Moov.Traks {
		t := &track{id: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale}
		if trak.Mdia.Hdlr.HandlerType == "soun" {
			t.audio = true
			t.frameLen = int64(tracks.Audio.FrameLength)
			wr.audio = t
		} else {
			wr.video = t
		}
	}
	if err := init.Encode(wr.bw); err != nil {
		return nil, fmt.Errorf("fmp4: write init segment: %w", err)
	}
	if err := wr.bw.Flush(); err != nil {
		return nil, fmt.Errorf("fmp4: write init segment: %w", err)
	}
	return wr, nil
}

// newInit builds ftyp + moov: one trak per present track (video first), no samples,
// and an mvex so that readers expect fragments.
func newInit(tracks Tracks) (*mp4.InitSegment, error) {
	init := mp4.CreateEmptyInit()
	// mp4ff's default ftyp claims CMAF ("cmfc"), which a two-track file is not.
	init.Ftyp = mp4.NewFtyp("iso6", 0, []string{"iso6", "isom", "avc1", "mp41"})
	init.Children[0] = init.Ftyp
	init.Moov.Mvhd.Timescale = 1000
	if c := tracks.Video; c != nil {
		trak := init.AddEmptyTrack(VideoTimescale, "video", "und")
		// The avcC is the publisher's record byte for byte: mp4ff's SetAVCDescriptor
		// rebuilds it from the SPS and would drop High-profile chroma/bit-depth fields.
		avcC := mp4.CreateUnknownBox("avcC", uint64(8+len(c.Record)), c.Record)
		if c.Width <= 0 || c.Height <= 0 || c.Width > math.MaxUint16 || c.Height > math.MaxUint16 {
			return nil, fmt.Errorf("fmp4: video size %dx%d out of range", c.Width, c.Height)
		}
		trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateVisualSampleEntryBox("avc1", uint16(c.Width), uint16(c.Height), avcC))
		trak.Tkhd.Width = mp4.Fixed32(c.Width << 16)
		trak.Tkhd.Height = mp4.Fixed32(c.Height << 16)
	}
	if c := tracks.Audio; c != nil {
		if c.SampleRate <= 0 || c.FrameLength <= 0 {
			return nil, fmt.Errorf("fmp4: AAC sample rate %d, frame length %d", c.SampleRate, c.FrameLength)
		}
		trak := init.AddEmptyTrack(uint32(c.SampleRate), "audio", "und")
		// Not SetAACDescriptor: it rewrites the AudioSpecificConfig with two channels.
		channels := uint16(c.Channels)
		if channels == 0 {
			channels = 2 // channel configuration in a program_config_element; 2 is the usual
		}
		rate := c.SampleRate
		if rate > math.MaxUint16 {
			rate = 0 // the 16-bit field cannot hold 88.2/96 kHz; readers use the esds
		}
		esds := mp4.CreateEsdsBox(c.Record)
		trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", channels, 16, uint16(rate), esds))
	}
	return init, nil
}

// WritePacket queues a media sample. Sequence headers equal to the writer's tracks,
// data packets, AVC end-of-sequence packets and packets of a kind the writer has no
// track for are ignored (so an audio-only recording can be fed the whole stream).
// Video frames before the first keyframe are dropped: nothing could decode them.
// A sequence header that differs from the tracks, or a non-AVC/non-AAC packet, returns
// ErrCodecChange and leaves the writer usable, to be closed.
func (w *Writer) WritePacket(p *media.Packet) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	switch p.Kind {
	case media.KindVideo:
		t := w.video
		if t == nil {
			return nil
		}
		if c := p.VideoCodec(); c != media.VideoCodecAVC {
			return fmt.Errorf("fmp4: video codec id %d: %w", c, ErrCodecChange)
		}
		if p.SequenceHeader {
			if !bytes.Equal(p.Payload(), w.tracks.Video.Record) {
				return fmt.Errorf("fmp4: new AVC decoder configuration: %w", ErrCodecChange)
			}
			return nil
		}
		// AVCPacketType 1 is NAL units; 2 is the end of sequence ffmpeg writes last.
		if b := p.Body(); len(b) < 5 || b[1] != 1 || len(p.Payload()) == 0 {
			return nil
		}
		if !t.keySeen && !p.Keyframe {
			return nil
		}
		t.keySeen = true
		t.enqueue(sample{data: p.Payload(), dts: int64(p.Timestamp), ct: p.CompositionTime, key: p.Keyframe})
	case media.KindAudio:
		t := w.audio
		if t == nil {
			return nil
		}
		if f := p.AudioFormat(); f != media.AudioFormatAAC {
			return fmt.Errorf("fmp4: audio format %d: %w", f, ErrCodecChange)
		}
		if p.SequenceHeader {
			if !bytes.Equal(p.Payload(), w.tracks.Audio.Record) {
				return fmt.Errorf("fmp4: new AudioSpecificConfig: %w", ErrCodecChange)
			}
			return nil
		}
		if len(p.Payload()) == 0 {
			return nil
		}
		t.enqueue(sample{data: p.Payload(), dts: int64(p.Timestamp), key: true})
	}
	return nil
}

// enqueue queues s and keeps the last forward step of the track's timestamps.
func (t *track) enqueue(s sample) {
	if t.queued && s.dts > t.lastMS {
		t.stepMS = s.dts - t.lastMS
	}
	t.queued, t.lastMS = true, s.dts
	t.queue = append(t.queue, s)
}

// Pending is the media time queued since the last flush: for the track with most, the
// distance between its oldest and newest unflushed timestamps. A crash now would lose
// about this much (plus the newest sample).
func (w *Writer) Pending() time.Duration {
	var d int64
	for _, t := range []*track{w.video, w.audio} {
		if t != nil && len(t.queue) > 0 {
			d = max(d, t.queue[len(t.queue)-1].dts-t.queue[0].dts)
		}
	}
	return time.Duration(d) * time.Millisecond
}

// Flush writes one fragment (moof+mdat) with every queued sample whose duration is
// known, i.e. all but the newest of each track. Flushing right after a video keyframe
// was written therefore ends the fragment before that keyframe, so the next fragment
// starts with it. Flush with nothing to write writes nothing. The fragment goes to the
// underlying writer before Flush returns; making it durable (fsync) is the caller's job.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrClosed
	}
	return w.flush(false)
}

// Close writes every queued sample, the newest of each track lasting one AAC frame, or
// for video the last step between two timestamps (1/25 s for a lone frame). It does
// not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return ErrClosed
	}
	err := w.flush(true)
	w.closed = true
	return err
}

func (w *Writer) flush(final bool) error {
	if w.err != nil {
		return w.err
	}
	var tracks []*track
	var ids []uint32
	for _, t := range []*track{w.video, w.audio} {
		if t != nil && t.ready(final) > 0 {
			tracks = append(tracks, t)
			ids = append(ids, t.id)
		}
	}
	if len(tracks) == 0 {
		return nil
	}
	if !w.baseSet {
		// The earliest DTS received on any track, held samples included. A track
		// whose first sample comes after this flush with an earlier DTS still is
		// clamped to 0 (toTimescale), which a live, DTS-ordered stream never does.
		w.base = math.MaxInt64
		for _, t := range []*track{w.video, w.audio} {
			if t != nil && len(t.queue) > 0 {
				w.base = min(w.base, t.queue[0].dts)
			}
		}
		w.baseSet = true
	}
	w.seq++
	frag, err := mp4.CreateMultiTrackFragment(w.seq, ids)
	if err != nil {
		return fmt.Errorf("fmp4: fragment %d: %w", w.seq, err)
	}
	for _, t := range tracks {
		if err := w.addSamples(frag, t, t.ready(final)); err != nil {
			return err
		}
	}
	if err := frag.Encode(w.bw); err != nil {
		w.err = fmt.Errorf("fmp4: write fragment %d: %w", w.seq, err)
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("fmp4: write fragment %d: %w", w.seq, err)
		return w.err
	}
	return nil
}

// ready is how many queued samples can be written: all of them at the end, otherwise
// all but the newest, whose duration the next sample will tell.
func (t *track) ready(final bool) int {
	if final {
		return len(t.queue)
	}
	return max(len(t.queue)-1, 0)
}

// addSamples moves the first n queued samples of t into frag.
func (w *Writer) addSamples(frag *mp4.Fragment, t *track, n int) error {
	if !t.started {
		t.next = t.toTimescale(t.queue[0].dts - w.base)
		t.started = true
	}
	for i := range n {
		s := t.queue[i]
		var dur uint32
		if i+1 < len(t.queue) {
			dur = t.durationUntil(t.toTimescale(t.queue[i+1].dts - w.base))
		} else {
			dur = t.lastDuration()
		}
		flags := mp4.SyncSampleFlags
		var cto int32
		if !t.audio {
			cto = int32(min(max(int64(s.ct)*VideoTimescale/1000, math.MinInt32), math.MaxInt32))
			if !s.key {
				flags = mp4.SetNonSyncSampleFlags(0)
			}
		}
		smp := mp4.NewSample(flags, dur, uint32(len(s.data)), cto)
		if err := frag.AddSampleToTrack(smp, t.id, t.next); err != nil {
			return fmt.Errorf("fmp4: fragment %d: %w", w.seq, err)
		}
		// A data part, not AddFullSample's copy: the packet's bytes go straight out.
		frag.Mdat.AddSampleDataPart(s.data)
		t.next += uint64(dur)
	}
	rest := copy(t.queue, t.queue[n:])
	clear(t.queue[rest:]) // drop references to written packets
	t.queue = t.queue[:rest]
	return nil
}

// toTimescale converts milliseconds to the track's timescale, rounding to nearest;
// times before the base are clamped to 0.
func (t *track) toTimescale(ms int64) uint64 {
	if ms <= 0 {
		return 0
	}
	return uint64((ms*int64(t.timescale) + 500) / 1000)
}

// durationUntil is the duration of the sample at t.next given the next sample's
// nominal decode time (its timestamp in the track's timescale): the distance to where
// the next sample is placed, which is its nominal time except that
//   - an AAC frame within a millisecond of the end of the previous one is placed at
//     that end (exact frame durations; the track stays within 1 ms of the timestamps);
//   - a sample whose time is not after t.next (a repeated or backwards timestamp) is
//     placed one tick after it, and the next forward timestamp takes the tick back.
//
// The placement is never derived from a sum of durations, so an irregular timestamp
// costs at most the ticks lent until the next regular one, never a lasting shift.
func (t *track) durationUntil(nominal uint64) uint32 {
	d := int64(nominal) - int64(t.next)
	if t.audio && abs(d-t.frameLen) <= t.msTicks() {
		d = t.frameLen
	}
	return uint32(min(max(d, 1), math.MaxUint32))
}

// msTicks is a millisecond in the track's timescale, rounded up: the rounding error
// of millisecond timestamps, half a millisecond on each side.
func (t *track) msTicks() int64 { return (int64(t.timescale) + 999) / 1000 }

// lastDuration is the duration of a sample with no successor: one frame for AAC, the
// last forward step of the timestamps for video (FLV finalizing and the HLS segmenter
// end the last frame the same way), 1/25 s when no step is known.
func (t *track) lastDuration() uint32 {
	switch {
	case t.audio:
		return uint32(t.frameLen)
	case t.stepMS > 0:
		return uint32(min(t.toTimescale(t.stepMS), math.MaxUint32))
	}
	return defaultFrameDuration
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
