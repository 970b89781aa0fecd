package hls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/wbuf"
)

// DefaultTarget is the segment duration used when SegmenterConfig.Target is zero: the
// live HLS target, short for latency (recording uses longer segments).
const DefaultTarget = 2 * time.Second

// Timeline checks. A same-track timestamp going back more than maxBackstep or forward
// more than maxGap is a new timeline (an encoder restart, a spliced source): segment
// durations computed across it would be meaningless, so the segment ends there.
const (
	maxBackstep = 1000  // ms
	maxGap      = 10000 // ms
)

// IsTimelineBreak tells whether a track's timestamp ts (ms), following last on the
// same track, starts a new timeline: the Segmenter marks a discontinuity there, and
// recording cuts its fragments there so that every format keeps one timeline. Smaller
// steps back are jitter and smaller jumps forward are gaps, kept as they are.
func IsTimelineBreak(last, ts int64) bool {
	return ts < last-maxBackstep || ts > last+maxGap
}

// maxSegmentFactor bounds a segment to this many targets even when no keyframe comes
// (a stalled video track next to live audio, an intra-refresh encoder without IDRs):
// a segment is held in memory or open on disk until it ends, so it must end.
const maxSegmentFactor = 10

var errClosed = errors.New("hls: segmenter is closed")

// SegmenterConfig configures a Segmenter.
type SegmenterConfig struct {
	// Target is the duration a segment reaches before it is cut, at the next video
	// keyframe (at the next audio frame for audio-only streams). Zero means
	// DefaultTarget.
	Target time.Duration
	// Tracks are the codec configurations known before the first packet, if any.
	Tracks Tracks
	// FirstSeq is the sequence number of the first segment.
	FirstSeq int
	// Create opens the destination of segment seq when its first packet arrives; the
	// Segmenter closes it when the segment ends. Recording passes a function creating
	// files, so segments stream to disk. When Create is nil the segments are built in
	// memory and handed over in Segment.Data, as live HLS serves them.
	Create func(seq int) (io.WriteCloser, error)
}

// Segment describes a finished segment.
type Segment struct {
	Seq   int
	Start uint32 // timestamp (ms) of its first packet
	// Duration in seconds: the start of the next segment minus the start of this one;
	// for the last segment, and one ended by a timeline break, the end of its last
	// frame.
	Duration float64
	// Discontinuity is set on the first segment after a codec configuration change or
	// a timeline break: the playlist must say EXT-X-DISCONTINUITY before it.
	Discontinuity bool
	Size          int64  // bytes of TS
	Data          []byte // the TS when SegmenterConfig.Create is nil; owned by the caller
}

// Entry returns the playlist entry of s under the given URI.
func (s *Segment) Entry(uri string) PlaylistEntry {
	return PlaylistEntry{Seq: s.Seq, URI: uri, Duration: s.Duration, Discontinuity: s.Discontinuity}
}

// Segmenter cuts a packet stream into MPEG-TS segments that each start with a PAT, a
// PMT and, when there is video, a keyframe, so each plays on its own. Only the segment
// being written is held. A Segmenter is not safe for concurrent use.
//
// When a segment cannot be written (Create or a write fails) it is abandoned: its
// writer is closed, the error returned, and the next segment reuses its sequence
// number, starts at the next keyframe and is marked as a discontinuity.
type Segmenter struct {
	target, max int64 // ms
	create      func(seq int) (io.WriteCloser, error)
	mux         *Muxer
	seq         int

	open bool
	cur  Segment
	file io.WriteCloser // when writing through create
	fbuf *wbuf.Writer   // buffers file (the muxer writes a PES, a frame, at a time) until Flush
	buf  *bytes.Buffer  // when writing to memory
	end  float64        // ms: the end of the latest frame written to cur

	needKey  bool     // drop video until a keyframe: nothing before it decodes
	cutNext  bool     // the configuration changed: cut at the next keyframe
	disc     bool     // the next segment opened is a discontinuity
	last     [2]int64 // last video, audio timestamps (ms), -1 for none
	videoDur int64    // ms between the last two video frames
	sizeHint int      // size of the previous segment, to size the next buffer
	closed   bool
}

// NewSegmenter returns a Segmenter. A nil Create keeps the segments in memory.
func NewSegmenter(cfg SegmenterConfig) *Segmenter {
	if cfg.Target <= 0 {
		cfg.Target = DefaultTarget
	}
	t := cfg.Target.Milliseconds()
	return &Segmenter{
		target:  t,
		max:     t * maxSegmentFactor,
		create:  cfg.Create,
		mux:     NewMuxer(io.Discard, cfg.Tracks),
		seq:     cfg.FirstSeq,
		needKey: true,
		last:    [2]int64{-1, -1},
	}
}

// Tracks returns the codec configurations in use.
func (s *Segmenter) Tracks() Tracks { return s.mux.Tracks() }

// WritePacket muxes p into the current segment and returns the previous segment when
// p starts a new one (nil otherwise). Video before the first keyframe, media before
// its sequence header and data packets are dropped. A packet error (unsupported
// codec, malformed payload) skips the packet.
func (s *Segmenter) WritePacket(p *media.Packet) (*Segment, error) {
	if s.closed {
		return nil, errClosed
	}
	if p.SequenceHeader {
		changed, err := s.mux.setConfig(p)
		if changed && s.open {
			s.cutNext, s.disc = true, true
		}
		return nil, err
	}
	if ok, err := s.mux.canWrite(p); !ok {
		return nil, err
	}
	k, video := 1, p.Kind == media.KindVideo
	if video {
		k = 0
	}
	if video && !p.Keyframe && s.needKey {
		return nil, nil
	}
	ts := int64(p.Timestamp)
	var done *Segment
	var err error
	if s.open && s.last[k] >= 0 && IsTimelineBreak(s.last[k], ts) {
		done, err = s.finish(s.end)
		s.disc, s.last = true, [2]int64{-1, -1}
		s.needKey = s.mux.tracks.Video != nil
		if err != nil || (video && !p.Keyframe) {
			return done, err
		}
	}
	if s.open {
		// With video, segments start at video keyframes; audio-only, at any frame
		// (audio packets are all keyframes).
		boundary := p.Keyframe && (video || s.mux.tracks.Video == nil)
		elapsed := ts - int64(s.cur.Start)
		if (boundary && (s.cutNext || elapsed >= s.target)) || elapsed >= s.max {
			if done, err = s.finish(float64(ts)); err != nil {
				return nil, err
			}
		}
	}
	if !s.open {
		if err := s.start(p); err != nil {
			return done, err
		}
	}
	if err := s.mux.WritePacket(p); err != nil {
		if s.mux.werr != nil {
			s.abandon()
		}
		return done, err
	}
	if video {
		if s.last[0] >= 0 && ts > s.last[0] {
			s.videoDur = ts - s.last[0]
		}
		s.needKey = false
	}
	s.last[k] = ts
	end := float64(ts + s.videoDur)
	if !video {
		end = float64(ts) + float64(s.mux.aacFrameUS)/1000
	}
	s.end = max(s.end, end)
	return done, nil
}

// Break ends the open segment at the end of its last frame (returning it, nil if none
// was open) and makes the next segment a discontinuity starting at a video keyframe:
// for a hole or a new timeline the timestamps do not show (packets skipped, a
// recording cut). Unlike Close, the Segmenter goes on.
func (s *Segmenter) Break() (*Segment, error) {
	if s.closed {
		return nil, errClosed
	}
	var done *Segment
	var err error
	if s.open {
		done, err = s.finish(s.end)
	}
	s.disc, s.last = true, [2]int64{-1, -1}
	s.needKey = s.mux.tracks.Video != nil
	return done, err
}

// Flush writes what is buffered to the current segment's writer (from Create), so a
// caller can make it durable.
func (s *Segmenter) Flush() error {
	if s.file == nil {
		return nil
	}
	if err := s.fbuf.Flush(); err != nil {
		s.abandon()
		return fmt.Errorf("hls: write segment %d: %w", s.cur.Seq, err)
	}
	return nil
}

// Close ends the current segment and returns it (nil if none was open). The Segmenter
// cannot be used afterwards.
func (s *Segmenter) Close() (*Segment, error) {
	if s.closed {
		return nil, nil
	}
	s.closed = true
	if !s.open {
		return nil, nil
	}
	return s.finish(s.end)
}

// start opens a segment with p as its first packet.
func (s *Segmenter) start(p *media.Packet) error {
	var w io.Writer
	if s.create != nil {
		f, err := s.create(s.seq)
		if err != nil {
			s.needKey, s.disc = s.mux.tracks.Video != nil, true
			return fmt.Errorf("hls: create segment %d: %w", s.seq, err)
		}
		if s.fbuf == nil {
			s.fbuf = wbuf.New(f)
		}
		s.fbuf.Reset(f)
		s.file, w = f, s.fbuf
	} else {
		s.buf = bytes.NewBuffer(make([]byte, 0, s.sizeHint+s.sizeHint/8))
		w = s.buf
	}
	if err := s.mux.StartSegment(w); err != nil { // nothing is pending: cannot fail
		return err
	}
	s.cur = Segment{Seq: s.seq, Start: p.Timestamp, Discontinuity: s.disc}
	s.open, s.disc, s.cutNext = true, false, false
	s.end = float64(p.Timestamp)
	return nil
}

// finish ends the current segment at end (ms).
func (s *Segmenter) finish(end float64) (*Segment, error) {
	if err := s.mux.Flush(); err != nil {
		s.abandon()
		return nil, err
	}
	seg := s.cur
	seg.Duration = max(0, end-float64(seg.Start)) / 1000
	seg.Size = s.mux.n
	s.open = false
	if s.file != nil {
		err := s.fbuf.Flush()
		if cerr := s.file.Close(); err == nil {
			err = cerr
		}
		s.fbuf.Reset(nil)
		s.file = nil
		if err != nil {
			s.needKey, s.disc = s.mux.tracks.Video != nil, true
			return nil, fmt.Errorf("hls: close segment %d: %w", seg.Seq, err)
		}
	} else {
		seg.Data = s.buf.Bytes()
		s.sizeHint = len(seg.Data)
		s.buf = nil
	}
	s.seq++
	return &seg, nil
}

// abandon drops the current segment after a write error; its sequence number is reused.
func (s *Segmenter) abandon() {
	s.mux.discardAudio()
	if s.file != nil {
		s.file.Close() // already failed; the write error is the one reported
		s.fbuf.Reset(nil)
		s.file = nil
	}
	s.buf = nil
	s.open = false
	s.needKey, s.disc = s.mux.tracks.Video != nil, true
}
