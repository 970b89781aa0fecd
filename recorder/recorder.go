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
//
// The layout is this package's alone: the upload job names a closed fragment by app,
// stream, push, sequence number and format, and [Spool] gives its files and removes it
// (with the folders that leaves empty) once storage holds it.
package recorder

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
	"github.com/livetape/livetape/packager/hls"
	"github.com/livetape/livetape/stream"
)

// minFragment is the shortest fragment kept: shorter ones are discarded.
const minFragment = time.Second

// syncEvery is how much media may be written between two fsyncs: what a crash loses.
const syncEvery = time.Second

// Sink receives closed fragments: serve wires it to the job queue (uploads); the
// tests use a LocalSink that moves them into a folder.
type Sink interface {
	// FragmentClosed takes over a finalized fragment (state closed). The recorder
	// does not touch the fragment afterwards.
	FragmentClosed(m *Manifest) error
}

// PushSink is told when a session starts recording a push and when the last
// fragment it recorded has been handed on (finalized or discarded): what is made of a
// push's fragments as a whole (a broadcast's stitch) waits in between. A Sink may
// implement it.
type PushSink interface {
	RecordingStarted(m PushRecording) error
	RecordingDone(m PushRecording) error
}

// PushRecording names a push being recorded.
type PushRecording struct {
	App, StreamID, PushID, BroadcastID string
}

// Recorder records the pushes that ask for it. It implements stream.Observer.
type Recorder struct {
	cfg   Config
	spool string
	sink  Sink
	log   *slog.Logger

	wg      sync.WaitGroup // sessions
	closing sync.WaitGroup // fragments being finalized

	finMu      sync.Mutex
	toFinalize []*fragment // closed fragments waiting for a finalizer
	finalizers int         // goroutines finalizing, at most maxFinalizers

	mu     sync.Mutex
	active map[string]bool // manifest files of the fragments being written or finalized

	dirMu     sync.Mutex
	recording map[string]int // push folders sessions record into: Spool.Remove leaves them

	ctl control // control.go: live publications, recording start/stop by the API, counters
}

var _ stream.Observer = (*Recorder)(nil)

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

// WaitContext is Wait until ctx ends; it then returns ctx's error, and what is not
// finalized yet stays in the spool ("recording"), finalized at the next start.
func (r *Recorder) WaitContext(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("recorder: fragments not finalized: %w", ctx.Err())
	}
}

// maxFinalizers bounds the fragments finalized at once: an MP4 rewrite reads and
// writes the whole file, and a cut of many streams at once (a shutdown, a record
// interval shared by every push) must not start one disk-bound rewrite per fragment.
const maxFinalizers = 2

// finalize queues a closed fragment for a finalizer, starting one if fewer than
// maxFinalizers run. The queue is not bounded: a session never waits for the disk.
func (r *Recorder) finalize(f *fragment, why string) {
	r.closing.Add(1)
	r.finMu.Lock()
	f.why = why
	r.toFinalize = append(r.toFinalize, f)
	start := r.finalizers < maxFinalizers
	if start {
		r.finalizers++
	}
	r.finMu.Unlock()
	if start {
		go r.runFinalizer()
	}
}

// runFinalizer finalizes queued fragments until none is left.
func (r *Recorder) runFinalizer() {
	for {
		r.finMu.Lock()
		if len(r.toFinalize) == 0 {
			r.finalizers--
			r.finMu.Unlock()
			return
		}
		f := r.toFinalize[0]
		r.toFinalize[0] = nil
		r.toFinalize = r.toFinalize[1:]
		r.finMu.Unlock()
		f.close(f.why)
		f.s.frags.Done()
		r.closing.Done()
	}
}

// PublishStarted starts recording p when its URL or the configuration asks for it.
func (r *Recorder) PublishStarted(p *stream.Publication) {
	ps := r.ctl.track(p)
	formats, interval := r.cfg.plan(p.Params)
	if len(formats) == 0 {
		return
	}
	if err := r.startSession(ps, formats, interval); err != nil {
		r.log.Error("cannot record", "stream", p.Params.Key(), "err", err)
	}
}

// startSession starts recording the publication of ps; the caller holds no lock.
func (r *Recorder) startSession(ps *pubState, formats []string, interval time.Duration) error {
	p := ps.pub
	// Stream ids and push ids were validated by live: they are safe path elements.
	dir := filepath.Join(r.spool, p.Params.App, p.Params.StreamID, p.PushID)
	release, err := r.makePushDir(dir)
	if err != nil {
		return fmt.Errorf("spool folder: %w", err)
	}
	sub, _, err := p.Stream.SubscribeNoDrop(r.cfg.Queue)
	if err != nil {
		release()
		return err
	}
	s := &session{
		r: r, pub: p, dir: dir, formats: formats, interval: interval, audioOnly: p.Params.AudioOnly,
		log: r.log.With("stream", p.Params.Key(), "push_id", p.PushID), sub: sub, state: ps, done: make(chan struct{}),
	}
	// A recording restarted by the API goes on numbering the push's fragments.
	s.seq = int(ps.lastSeq.Load())
	s.firstSeq = s.seq
	if !r.ctl.setSession(ps, s) {
		sub.Close()
		release()
		return ErrAlreadyRecording
	}
	if slices.Contains(formats, stream.FormatHLS) {
		if sink, ok := r.sink.(HLSSink); !ok {
			s.log.Error("HLS not recorded: the sink does not take HLS recordings")
		} else if err := s.startHLS(sink); err != nil {
			s.log.Error("HLS not recorded", "err", err)
		}
	}
	s.log.Info("recording", "formats", formats, "interval", interval, "audio_only", s.audioOnly)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer release()
		defer close(s.done)
		defer r.ctl.sessionEnded(ps, s)
		s.pushRecording(true)
		s.run(sub)
		s.frags.Wait() // its last fragment finalized and handed on
		s.pushRecording(false)
	}()
	return nil
}

// pushRecording tells a PushSink that the session starts recording, or is done.
func (s *session) pushRecording(started bool) {
	ps, ok := s.r.sink.(PushSink)
	if !ok {
		return
	}
	bid, _ := broadcastOf(s.pub)
	m := PushRecording{App: s.pub.Params.App, StreamID: s.pub.Params.StreamID, PushID: s.pub.PushID, BroadcastID: bid}
	var err error
	if started {
		err = ps.RecordingStarted(m)
	} else {
		err = ps.RecordingDone(m)
	}
	if err != nil {
		s.log.Warn("the pipeline was not told about the recording", "started", started, "err", err)
	}
}

// PublishEnded forgets the publication; its recording ends when the stream's
// subscription does.
func (r *Recorder) PublishEnded(p *stream.Publication, _ stream.EndReason, _ time.Time) {
	r.ctl.untrack(p)
}

// session records one push.
type session struct {
	r         *Recorder
	pub       *stream.Publication
	dir       string
	formats   []string
	interval  time.Duration
	audioOnly bool
	log       *slog.Logger
	sub       *stream.Subscriber
	state     *pubState
	done      chan struct{}  // closed when run returned (its last fragment is finalizing)
	frags     sync.WaitGroup // fragments closed and not yet finalized

	seq      int
	firstSeq int // seq before this session's first fragment
	// Read by Status from other goroutines: the open fragment's sequence number (0:
	// none), its media time, and the media time of the fragments closed before it.
	openSeq          atomic.Int64
	openMS, closedMS atomic.Int64
	frag             *fragment
	hls              *hlsRecording // the push's HLS recording (hlsrecord.go), nil when not asked
	videoHdr         *media.Packet
	audioHdr         *media.Packet
	videoCfg         *media.AVCConfig
	audioCfg         *media.AACConfig
	meta             *flv.Metadata
	metaNoVideo      bool // the publisher's metadata announces no video
	skipped          int64
	audioSinceVHdr   int // audio frames seen while no video header: a long run means audio-only

	// What the push sent that cannot be recorded; each reason is logged once, never
	// per packet.
	videoHdrInvalid bool // the last video sequence header did not parse
	audioHdrInvalid bool // the last audio sequence header did not parse
	videoFrames     int  // video frames received (not sequence headers)
	audioFrames     int  // audio frames received
	logged          map[string]bool
}

func (s *session) run(sub *stream.Subscriber) {
	for p := range sub.Packets() {
		if n := sub.Skipped.Load(); n != s.skipped {
			// The queue overflowed: never record across a hole.
			s.log.Error("recording gap: the recorder fell behind and skipped packets; fragment cut", "skipped", n-s.skipped)
			s.r.ctl.gaps.Add(1)
			s.skipped = n
			s.closeFragment("gap")
		}
		if s.frag != nil && s.frag.breaksTimeline(p) {
			// Where HLS marks a discontinuity every format starts a new fragment, so
			// each keeps one timeline; the next keyframe opens it.
			s.log.Warn("timeline break: the publisher's timestamps jumped; fragment cut", "kind", p.Kind,
				"timestamp", p.Timestamp, "previous", s.frag.lastTS[trackIndex(p.Kind)])
			s.closeFragment("timeline break")
		}
		if err := s.handle(p); err != nil {
			s.log.Error("recording error; fragment cut", "err", err)
			s.closeFragment("error")
		}
		if sub.Len() == 0 {
			s.flushBuffers() // caught up: the writers' buffers go back to the pool
		}
	}
	s.closeFragment("push ended")
	if s.hls != nil {
		s.hls.finish()
	}
	if s.seq == s.firstSeq {
		s.log.Warn("push ended with nothing recorded", "why", s.nothingRecordedWhy(),
			"video_frames", s.videoFrames, "audio_frames", s.audioFrames,
			"video_header", headerState(s.videoHdr != nil, s.videoHdrInvalid),
			"audio_header", headerState(s.audioHdr != nil, s.audioHdrInvalid))
	}
}

// nothingRecordedWhy explains a push that left no fragment.
func (s *session) nothingRecordedWhy() string {
	switch {
	case s.videoFrames+s.audioFrames == 0:
		return "no audio or video frames were received"
	case s.videoHdr == nil && s.audioHdr == nil:
		return "no valid sequence header (AVC or AAC decoder configuration) came with the frames, and frames cannot be recorded without one"
	case s.videoHdr != nil && s.audioOnly:
		return "record_type=audio, and no audio with a valid AAC sequence header came"
	case s.videoHdr != nil:
		return "no video keyframe came after the video sequence header"
	}
	return "the audio alone never ran long enough to be recorded as an audio-only stream"
}

func headerState(valid, invalid bool) string {
	switch {
	case valid:
		return "valid"
	case invalid:
		return "invalid"
	}
	return "none"
}

// logOnce logs a warning the first time key comes up in this push.
func (s *session) logOnce(key, msg string, args ...any) {
	if s.logged[key] {
		return
	}
	if s.logged == nil {
		s.logged = map[string]bool{}
	}
	s.logged[key] = true
	s.log.Warn(msg, args...)
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
			// Frames that follow a header we cannot read cannot be decoded either:
			// record the audio alone until a valid header arrives.
			s.videoHdrInvalid = true
			s.logOnce("video header", "video sequence header invalid: video is not recorded until a valid one arrives, audio goes on",
				"err", err, "size", len(p.Payload()))
			if s.videoHdr != nil {
				s.videoHdr, s.videoCfg = nil, nil
				if s.frag != nil && !s.frag.audioOnly {
					s.closeFragment("video sequence header invalid")
				}
			}
			return nil
		}
		s.videoHdrInvalid = false
		if s.videoHdr == nil || !cfg.Equal(s.videoCfg) {
			if s.frag != nil && !s.frag.audioOnly {
				s.closeFragment("video codec change")
			}
			s.videoHdr, s.videoCfg = p, cfg
		}
		return nil
	case p.SequenceHeader:
		cfg, err := media.ParseAACConfig(p.Payload())
		if err != nil {
			s.audioHdrInvalid = true
			s.logOnce("audio header", "audio sequence header invalid: audio is not recorded until a valid one arrives, video goes on",
				"err", err, "size", len(p.Payload()))
			if s.audioHdr != nil {
				s.audioHdr, s.audioCfg = nil, nil
				s.closeFragment("audio sequence header invalid")
			}
			return nil
		}
		s.audioHdrInvalid = false
		if s.audioHdr == nil || !cfg.Equal(s.audioCfg) {
			if s.frag != nil {
				s.closeFragment("audio codec change")
			}
			s.audioHdr, s.audioCfg = p, cfg
		}
		return nil
	case p.Kind == media.KindVideo:
		s.videoFrames++
		if s.audioOnly {
			return nil
		}
		if s.videoHdr == nil {
			if !s.videoHdrInvalid {
				s.logOnce("video header", "video frames without a video sequence header: video is not recorded until one arrives")
			}
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
		s.audioFrames++
		if s.audioHdr == nil {
			if !s.audioHdrInvalid {
				s.logOnce("audio header", "audio frames without an audio sequence header: audio is not recorded until one arrives")
			}
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
// stream that has shown no recordable video (its metadata says so, its video sequence
// header is invalid, or 2 s of audio came without a video header).
func (s *session) audioOnlyStream() bool {
	return s.audioOnly || (s.videoHdr == nil && (s.metaNoVideo || s.videoHdrInvalid || s.audioSinceVHdr > 90))
}

func (s *session) open(first *media.Packet) error {
	s.seq++
	if s.state != nil { // nil in tests that drive a session by hand
		s.state.lastSeq.Store(int64(s.seq))
	}
	s.openSeq.Store(int64(s.seq))
	s.openMS.Store(0)
	h := headers{audio: restamp(s.audioHdr, 0), meta: s.meta}
	if !s.audioOnly {
		h.video = restamp(s.videoHdr, 0)
	}
	f := &fragment{
		s: s, seq: s.seq, base: first.Timestamp, started: time.Now(),
		audioOnly: h.video == nil, lastTS: [2]int64{-1, -1},
	}
	if s.hls != nil {
		s.hls.headers(h)
	}
	for _, format := range s.formats {
		if format == stream.FormatHLS {
			continue // recorded by the session's HLS writer, not in fragments
		}
		m := &Manifest{
			FileID:      fileID(s.pub, s.seq, format),
			App:         s.pub.Params.App,
			StreamID:    s.pub.Params.StreamID,
			PushID:      s.pub.PushID,
			BroadcastID: s.pub.BroadcastID,
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
		s.r.setActive(m, true)
		w, err := newFormatWriter(format, s.dir, s.seq, h)
		if err != nil {
			m.remove()
			s.r.setActive(m, false)
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
	if s.hls != nil && why != "interval" && why != "push ended" {
		// record_interval does not cut HLS; anything else is a discontinuity.
		s.hls.brk()
	}
	f.end = time.Now()
	s.closedMS.Add(f.duration().Milliseconds())
	s.openSeq.Store(0)
	s.openMS.Store(0)
	// Finalizing (an MP4 rewrite) can take seconds: the next fragment starts meanwhile.
	s.frags.Add(1)
	s.r.finalize(f, why)
}

func restamp(p *media.Packet, ts uint32) *media.Packet {
	if p == nil {
		return nil
	}
	return p.WithTimestamp(ts)
}

// fileID names a fragment in one format, unique and stable across restarts: the pipeline
// derives its task ids from it.
func fileID(p *stream.Publication, seq int, format string) string {
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
	why       string // why it was cut, for the log of its finalizing
	synced    uint32 // rebased time of the last fsync
	// trackEnd is where each track (video, audio) ends: its last frame's rebased timestamp
	// plus its last forward step, as the writers end a last frame; 0 before a frame.
	trackEnd [2]uint32
	step     [2]uint32

	lastTS [2]int64 // timestamp of the last video, audio frame written; -1 for none
}

type output struct {
	m      *Manifest
	w      formatWriter
	failed bool
}

// fail stops writing o's format; the other formats go on.
func (f *fragment) fail(o *output, err error) {
	f.s.log.Error("recording format failed; the others go on", "format", o.m.Format, "err", err)
	o.failed = true
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
	if f.s.hls != nil {
		f.s.hls.write(p) // the publisher's timestamp: HLS keeps the push's timeline
	}
	rel := p.Timestamp - f.base
	if !p.SequenceHeader && (p.Kind == media.KindVideo || p.Kind == media.KindAudio) {
		f.advance(p, rel)
	}
	q := p.Retimed(rel) // the payload is shared: only the timestamp is the fragment's
	for i := range f.outs {
		o := &f.outs[i]
		if o.failed {
			continue
		}
		if err := o.w.writePacket(q); err != nil {
			f.fail(o, err)
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

// flushBuffers writes out what the open writers buffer (see formatWriter.flushBuffer).
func (s *session) flushBuffers() {
	if f := s.frag; f != nil {
		for i := range f.outs {
			o := &f.outs[i]
			if o.failed {
				continue
			}
			if err := o.w.flushBuffer(); err != nil {
				f.fail(o, err)
			}
		}
	}
	if s.hls != nil {
		s.hls.flushBuffer()
	}
}

// breaksTimeline tells whether frame p, next on its track, starts a new timeline (see
// hls.IsTimelineBreak).
func (f *fragment) breaksTimeline(p *media.Packet) bool {
	if p.SequenceHeader || (p.Kind != media.KindVideo && p.Kind != media.KindAudio) {
		return false
	}
	last := f.lastTS[trackIndex(p.Kind)]
	return last >= 0 && hls.IsTimelineBreak(last, int64(p.Timestamp))
}

// trackIndex is 0 for video, 1 for audio.
func trackIndex(k media.Kind) int {
	if k == media.KindAudio {
		return 1
	}
	return 0
}

// advance moves the end of p's track to frame p, rel ms into the fragment.
func (f *fragment) advance(p *media.Packet, rel uint32) {
	i := trackIndex(p.Kind)
	prev := f.lastTS[i]
	f.lastTS[i] = int64(p.Timestamp)
	if prev >= 0 && int64(p.Timestamp) > prev {
		f.step[i] = uint32(int64(p.Timestamp) - prev)
	}
	step := f.step[i]
	if step == 0 { // a track's first frame: a nominal frame until the next one says
		step = [2]uint32{40, 23}[i]
	}
	f.trackEnd[i] = rel + step
	f.s.openMS.Store(f.duration().Milliseconds())
}

// duration is the media time of the fragment so far: where its longest track ends.
// The MP4 writer ends each track the same way, so a callback's duration is what a
// player of the file shows.
func (f *fragment) duration() time.Duration {
	return time.Duration(max(f.trackEnd[0], f.trackEnd[1])) * time.Millisecond
}

// close finalizes every format and hands the fragments on. A recording that would be
// shorter than minFragment in all (its first fragment) is discarded; a short fragment
// after others (the tail after the last record_interval cut) is media of a recording
// and is kept: a replay stitched from the fragments lasts as long as the push.
func (f *fragment) close(why string) {
	defer func() {
		for _, o := range f.outs {
			f.s.r.setActive(o.m, false)
		}
	}()
	log := f.s.log.With("seq", f.seq)
	d := f.duration()
	if d < minFragment && f.seq == f.s.firstSeq+1 {
		log.Info("fragment discarded: shorter than 1 s", "duration", d, "why", why)
		f.abort()
		return
	}
	for _, o := range f.outs {
		if o.failed {
			o.w.abort()
			o.m.remove()
			f.s.r.ctl.lost.Add(1)
			continue
		}
		name, size, err := o.w.finish()
		if err != nil {
			// The part and its manifest ("recording") stay: reconcile finalizes them
			// again once the cause (a full disk) is gone.
			log.Error("fragment not finalized: kept in the spool, retried on reconcile", "format", o.m.Format, "err", err)
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
		f.s.r.ctl.closed(o.m.Format, size)
		f.s.r.handOn(o.m)
	}
}

func (f *fragment) abort() {
	for _, o := range f.outs {
		o.w.abort()
		o.m.remove()
		f.s.r.setActive(o.m, false)
	}
}

// setActive marks m's fragment as being written or finalized by a session, which
// Resubmit leaves alone, or no longer.
func (r *Recorder) setActive(m *Manifest, active bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active == nil {
		r.active = map[string]bool{}
	}
	if active {
		r.active[m.ManifestFile()] = true
	} else {
		delete(r.active, m.ManifestFile())
	}
}

func (r *Recorder) isActive(m *Manifest) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active[m.ManifestFile()]
}

// handOn gives a closed fragment to the sink; on failure it stays in the spool, closed,
// and the next start hands it on again.
func (r *Recorder) handOn(m *Manifest) {
	if err := r.sink.FragmentClosed(m); err != nil {
		r.log.Error("fragment kept in the spool: sink refused it", "file_id", m.FileID, "err", err)
	}
}
