// Package recorder records live streams as the push URL asks (record=mp4|hls|flv,
// record_interval, record_type=audio): remuxing only, into fragments in a spool folder,
// crash-safe, and recovered after a crash. Closed fragments go to a Sink.
//
// Spool layout, one folder per push (one publisher connection):
//
//	SPOOL/{app}/{stream_id}/{push_id}/0001.flv       a finished fragment
//	SPOOL/{app}/{stream_id}/{push_id}/0001.flv.json  its manifest
//	SPOOL/{app}/{stream_id}/{push_id}/0002.mp4.part  being written (fragmented MP4)
//	SPOOL/{app}/{stream_id}/{push_id}/0002.hls/      HLS: index.m3u8 and seg-N.ts
package recorder

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/livetape/livetape/live"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
)

// minFragment is the shortest fragment kept: shorter ones are discarded.
const minFragment = time.Second

// syncEvery is how much media may be written between two fsyncs: what a crash loses.
const syncEvery = time.Second

// Sink receives closed fragments. The pipeline wires it to the job queue; until then
// LocalSink moves them out of the spool.
type Sink interface {
	// FragmentClosed takes over a finalized fragment (state closed). The recorder
	// does not touch the fragment afterwards.
	FragmentClosed(m *Manifest) error
}

// Recorder records the pushes that ask for it. It implements live.Observer.
type Recorder struct {
	cfg   Config
	spool string
	sink  Sink
	log   *slog.Logger

	wg      sync.WaitGroup // sessions
	closing sync.WaitGroup // fragments being finalized
}

var _ live.Observer = (*Recorder)(nil)

// New returns a recorder writing under spool and handing closed fragments to sink.
func New(cfg Config, spool string, sink Sink, log *slog.Logger) (*Recorder, error) {
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return nil, fmt.Errorf("recorder: spool: %w", err)
	}
	return &Recorder{cfg: cfg, spool: spool, sink: sink, log: log.With("component", "recorder")}, nil
}

// Wait blocks until every recording has ended and its fragments are finalized and handed
// on. Streams end first (the live server closes them on shutdown).
func (r *Recorder) Wait() {
	r.wg.Wait()
	r.closing.Wait()
}

// PublishStarted starts recording p when its URL or the configuration asks for it.
func (r *Recorder) PublishStarted(p *live.Publication) {
	formats, interval := r.cfg.plan(p.Params)
	if len(formats) == 0 {
		return
	}
	// Stream ids and push ids were validated by live: they are safe path elements.
	dir := filepath.Join(r.spool, p.Params.App, p.Params.StreamID, p.PushID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.log.Error("cannot record: spool folder", "stream", p.Params.Key(), "err", err)
		return
	}
	sub, _, err := p.Stream.SubscribeNoDrop(r.cfg.Queue)
	if err != nil {
		return
	}
	s := &session{
		r: r, pub: p, dir: dir, formats: formats, interval: interval, audioOnly: p.Params.AudioOnly,
		log: r.log.With("stream", p.Params.Key(), "push_id", p.PushID),
	}
	s.log.Info("recording", "formats", formats, "interval", interval, "audio_only", s.audioOnly)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		s.run(sub)
	}()
}

// PublishEnded is a no-op: the recording ends when the stream's subscription does.
func (r *Recorder) PublishEnded(*live.Publication, live.EndReason, time.Time) {}

// session records one push.
type session struct {
	r         *Recorder
	pub       *live.Publication
	dir       string
	formats   []string
	interval  time.Duration
	audioOnly bool
	log       *slog.Logger

	seq            int
	frag           *fragment
	videoHdr       *media.Packet
	audioHdr       *media.Packet
	videoCfg       *media.AVCConfig
	audioCfg       *media.AACConfig
	meta           *flv.Metadata
	metaNoVideo    bool // the publisher's metadata announces no video
	skipped        int64
	audioSinceVHdr int // audio frames seen while no video header: a long run means audio-only
}

func (s *session) run(sub *live.Subscriber) {
	for p := range sub.C() {
		if n := sub.Skipped.Load(); n != s.skipped {
			// The queue overflowed: never record across a hole.
			s.log.Error("recording gap: the recorder fell behind and skipped packets; fragment cut", "skipped", n-s.skipped)
			s.skipped = n
			s.closeFragment("gap")
		}
		if err := s.handle(p); err != nil {
			s.log.Error("recording error; fragment cut", "err", err)
			s.closeFragment("error")
		}
	}
	s.closeFragment("push ended")
}

func (s *session) handle(p *media.Packet) error {
	switch {
	case p.Kind == media.KindData:
		if _, meta, err := flv.ParseScriptData(p.Body()); err == nil && meta != nil {
			meta.Duration, meta.FileSize, meta.Keyframes = 0, 0, nil
			s.meta = meta
			s.metaNoVideo = meta.VideoCodecID == 0 && meta.Width == 0
		}
		return nil
	case p.SequenceHeader && p.Kind == media.KindVideo:
		if s.audioOnly {
			return nil
		}
		cfg, err := media.ParseAVCConfig(p.Payload())
		if err != nil {
			return fmt.Errorf("video sequence header: %w", err)
		}
		if s.videoHdr == nil || !cfg.Equal(s.videoCfg) {
			if s.frag != nil {
				s.closeFragment("video codec change")
			}
			s.videoHdr, s.videoCfg = p, cfg
		}
		return nil
	case p.SequenceHeader:
		cfg, err := media.ParseAACConfig(p.Payload())
		if err != nil {
			return fmt.Errorf("audio sequence header: %w", err)
		}
		if s.audioHdr == nil || !cfg.Equal(s.audioCfg) {
			if s.frag != nil {
				s.closeFragment("audio codec change")
			}
			s.audioHdr, s.audioCfg = p, cfg
		}
		return nil
	case p.Kind == media.KindVideo:
		if s.audioOnly || s.videoHdr == nil {
			return nil
		}
		if s.frag == nil || s.frag.audioOnly {
			if !p.Keyframe {
				return nil // wait for a keyframe: every fragment plays on its own
			}
			if s.frag != nil {
				s.closeFragment("video started")
			}
			return s.open(p)
		}
		if p.Keyframe && s.frag.elapsed(p) >= s.interval {
			s.closeFragment("interval")
			return s.open(p)
		}
		return s.frag.write(p)
	default: // audio frame
		if s.audioHdr == nil {
			return nil
		}
		if s.frag == nil {
			if !s.audioOnlyStream() {
				s.audioSinceVHdr++
				return nil // wait for the video keyframe
			}
			return s.open(p)
		}
		if s.frag.audioOnly && s.frag.elapsed(p) >= s.interval {
			s.closeFragment("interval")
			return s.open(p)
		}
		return s.frag.write(p)
	}
}

// audioOnlyStream tells whether fragments may start on audio: record_type=audio, or a
// stream that has shown no video (its metadata says so, or 2 s of audio came without a
// video header).
func (s *session) audioOnlyStream() bool {
	return s.audioOnly || (s.videoHdr == nil && (s.metaNoVideo || s.audioSinceVHdr > 90))
}

func (s *session) open(first *media.Packet) error {
	s.seq++
	h := headers{audio: restamp(s.audioHdr, 0), meta: s.meta}
	if !s.audioOnly {
		h.video = restamp(s.videoHdr, 0)
	}
	f := &fragment{
		s: s, seq: s.seq, base: first.Timestamp, started: time.Now(),
		audioOnly: h.video == nil,
	}
	for _, format := range s.formats {
		m := &Manifest{
			FileID:      fileID(s.pub, s.seq, format),
			App:         s.pub.Params.App,
			StreamID:    s.pub.Params.StreamID,
			PushID:      s.pub.PushID,
			Seq:         s.seq,
			Format:      format,
			StartTime:   f.started.UTC(),
			StreamParam: s.pub.Params.StreamParam(),
			AudioOnly:   f.audioOnly,
			State:       StateRecording,
			dir:         s.dir,
		}
		if err := m.save(); err != nil {
			f.abort()
			return err
		}
		w, err := newFormatWriter(format, s.dir, s.seq, h)
		if err != nil {
			m.remove()
			f.abort()
			return err
		}
		f.outs = append(f.outs, output{m: m, w: w})
	}
	s.frag = f
	return f.write(first)
}

func (s *session) closeFragment(why string) {
	f := s.frag
	if f == nil {
		return
	}
	s.frag = nil
	f.end = time.Now()
	// Finalizing (an MP4 rewrite) can take seconds: the next fragment starts meanwhile.
	s.r.closing.Add(1)
	go func() {
		defer s.r.closing.Done()
		f.close(why)
	}()
}

func restamp(p *media.Packet, ts uint32) *media.Packet {
	if p == nil {
		return nil
	}
	return p.WithTimestamp(ts)
}

// fileID names a fragment in one format, unique and stable across restarts: the pipeline
// derives its task ids from it.
func fileID(p *live.Publication, seq int, format string) string {
	return fmt.Sprintf("%s_%s_%04d_%s", p.Params.StreamID, p.PushID, seq, format)
}

// fragment is one fragment being recorded in every requested format.
type fragment struct {
	s         *session
	seq       int
	base      uint32 // timestamp of the first packet: the fragment's 0
	started   time.Time
	end       time.Time
	audioOnly bool
	outs      []output
	last      uint32 // last rebased timestamp
	lastDur   uint32 // last frame-to-frame step, to end the last frame
	synced    uint32 // rebased time of the last fsync
}

type output struct {
	m      *Manifest
	w      formatWriter
	failed bool
}

func (f *fragment) elapsed(p *media.Packet) time.Duration {
	return time.Duration(p.Timestamp-f.base) * time.Millisecond
}

func (f *fragment) write(p *media.Packet) error {
	if p.Timestamp < f.base {
		return nil // interleaved audio a little older than the starting keyframe
	}
	if f.audioOnly && p.Kind == media.KindVideo {
		return nil
	}
	rel := p.Timestamp - f.base
	if rel > f.last {
		f.lastDur = min(rel-f.last, 100)
		f.last = rel
	}
	q := p.WithTimestamp(rel)
	for i := range f.outs {
		o := &f.outs[i]
		if o.failed {
			continue
		}
		if err := o.w.writePacket(q); err != nil {
			f.s.log.Error("recording format failed; the others go on", "format", o.m.Format, "err", err)
			o.failed = true
		}
	}
	if time.Duration(rel-f.synced)*time.Millisecond >= syncEvery {
		f.synced = rel
		for i := range f.outs {
			if o := &f.outs[i]; !o.failed {
				if err := o.w.sync(); err != nil {
					f.s.log.Error("recording sync failed", "format", o.m.Format, "err", err)
					o.failed = true
				}
			}
		}
	}
	return nil
}

func (f *fragment) duration() time.Duration {
	return time.Duration(f.last+f.lastDur) * time.Millisecond
}

// close finalizes every format and hands the fragments on; a fragment shorter than
// minFragment is discarded.
func (f *fragment) close(why string) {
	log := f.s.log.With("seq", f.seq)
	d := f.duration()
	if d < minFragment {
		log.Info("fragment discarded: shorter than 1 s", "duration", d, "why", why)
		f.abort()
		return
	}
	for _, o := range f.outs {
		if o.failed {
			o.w.abort()
			o.m.remove()
			continue
		}
		name, size, err := o.w.finish()
		if err != nil {
			log.Error("fragment lost: finalizing failed", "format", o.m.Format, "err", err)
			continue
		}
		o.m.Path, o.m.Size, o.m.Duration = name, size, d.Seconds()
		o.m.EndTime = f.end.UTC()
		o.m.State = StateClosed
		if err := o.m.save(); err != nil {
			log.Error("fragment manifest", "err", err)
			continue
		}
		// Only now that the manifest says closed may the part go: until then a crash
		// finalizes the part again.
		os.Remove(o.m.File() + partSuffix)
		log.Info("fragment closed", "format", o.m.Format, "file", o.m.File(), "duration", d, "size", size, "why", why)
		f.s.r.handOn(o.m)
	}
}

func (f *fragment) abort() {
	for _, o := range f.outs {
		o.w.abort()
		o.m.remove()
	}
}

// handOn gives a closed fragment to the sink; on failure it stays in the spool, closed,
// and the next start hands it on again.
func (r *Recorder) handOn(m *Manifest) {
	if err := r.sink.FragmentClosed(m); err != nil {
		r.log.Error("fragment kept in the spool: sink refused it", "file_id", m.FileID, "err", err)
	}
}
