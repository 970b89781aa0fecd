package stream

import (
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livetape/livetape/media"
)

// Errors the hub returns; callers branch on them.
var (
	ErrAlreadyPublishing = errors.New("stream is already being published")
	ErrStreamNotFound    = errors.New("stream not found")
)

// maxGOPBytes bounds the GOP cache of a stream (a pathological GOP is not cached).
const maxGOPBytes = 32 << 20

// Hub is the registry of live streams, keyed by "app/stream_id". One mutex guards the map.
type Hub struct {
	queue    int // default subscriber queue length
	log      *slog.Logger
	holdWall time.Duration // see Subscriber.hold; tests lengthen it

	mu      sync.Mutex
	streams map[string]*Stream
}

// NewHub returns an empty hub whose subscribers queue up to queue packets each.
func NewHub(queue int, log *slog.Logger) *Hub {
	return &Hub{queue: queue, log: log, holdWall: holdWall, streams: make(map[string]*Stream)}
}

// Publish registers a new live stream. It fails with ErrAlreadyPublishing while the key
// has a publisher.
func (h *Hub) Publish(params *PushParams) (*Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := params.Key()
	if _, ok := h.streams[key]; ok {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyPublishing, key)
	}
	s := &Stream{
		Params:  params,
		Started: time.Now(),
		hub:     h,
		log:     h.log.With("stream", key),
	}
	s.in.reset()
	h.streams[key] = s
	return s, nil
}

// Lookup returns the live stream app/id, or nil.
func (h *Hub) Lookup(app, id string) *Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams[app+"/"+id]
}

// Streams returns the live streams.
func (h *Hub) Streams() []*Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		out = append(out, s)
	}
	return out
}

func (h *Hub) remove(s *Stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams[s.Params.Key()] == s {
		delete(h.streams, s.Params.Key())
	}
}

// Stream is one live stream: one publisher writes packets, any number of subscribers
// read them. The publisher never waits on a subscriber.
type Stream struct {
	Params  *PushParams
	Started time.Time

	hub *Hub
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	subs     []*Subscriber   // replaced, never mutated in place, so iteration needs no copy
	meta     *media.Packet   // last onMetaData
	videoHdr *media.Packet   // last AVC sequence header
	audioHdr *media.Packet   // last AAC sequence header
	gop      []*media.Packet // packets since the last video keyframe, keyframe first
	gopBytes int
	// releaseTimer hands held packets to internal subscribers when the publisher
	// pauses (see Subscriber.hold); armed while some are held.
	releaseTimer *time.Timer
	timerArmed   bool

	// Counters read by stats and metrics (stats.go); guarded by mu but packets and bytes.
	packets, bytes  atomic.Int64
	in              ingest
	pub             *Publication
	bytesOut        [numProtocols]int64
	viewerSkipped   int64
	internalSkipped int64
	drops           int64
	hls             hlsViewers
}

// Packets is how many packets the publisher has written.
func (s *Stream) Packets() int64 { return s.packets.Load() }

// Bytes is how many bytes (FLV tags) the publisher has written.
func (s *Stream) Bytes() int64 { return s.bytes.Load() }

// GOP describes the cached GOP: the timestamp of its keyframe and how many packets it
// holds (0 before the first keyframe).
func (s *Stream) GOP() (keyframe uint32, packets int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.gop) == 0 {
		return 0, 0
	}
	return s.gop[0].Timestamp, len(s.gop)
}

// Cached says what the GOP cache holds for a new subscriber: packets from a keyframe on,
// and the video and audio sequence headers.
func (s *Stream) Cached() (gop, videoHeader, audioHeader, metadata bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.gop) > 0, s.videoHdr != nil, s.audioHdr != nil, s.meta != nil
}

// WritePacket hands p to every subscriber and updates the GOP cache. p must not be
// modified afterwards. It never blocks on a subscriber.
func (s *Stream) WritePacket(p *media.Packet) {
	s.packets.Add(1)
	s.bytes.Add(int64(len(p.Tag)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.cache(p)
	if p.SequenceHeader {
		s.in.header(p)
	} else if p.Kind != media.KindData {
		s.in.count(p)
	}
	hasVideo := s.videoHdr != nil
	held := false
	for _, sub := range s.subs {
		if sub.noDrop {
			held = sub.hold(p, hasVideo) || held
		} else {
			sub.offer(p, hasVideo)
		}
	}
	if held && !s.timerArmed {
		s.armRelease()
	}
}

// Internal subscribers (recorder, live HLS) get packets in batches: each woke its
// goroutine per packet (futex wake-ups and scheduler work were a third of the profile
// of recorded pushes), and neither needs a packet sooner than its batch brings it. A
// batch is handed over at a keyframe (a segment or fragment may start there), a header
// or metadata, once it spans holdMedia of media or holdPackets packets, and at the
// latest holdWall after the first packet held (a publisher that pauses), or when the
// stream ends. Half a second stays under the recorder's sync period (a second of
// media), and holdWall is longer so that a stream that flows has its batches cut by
// its media, not by the clock. 16 recorded pushes: 15.0-16.4 % CPU with batches of
// 100 ms (200 ms by the clock), 13.6-14.2 % with these.
const (
	holdMedia   = 500 // ms
	holdPackets = 64
	holdWall    = 700 * time.Millisecond
)

// hold queues p for the internal subscriber sub; it tells whether packets stay held.
// Called with stream.mu held.
func (sub *Subscriber) hold(p *media.Packet, hasVideo bool) bool {
	sub.held = append(sub.held, p)
	first := sub.held[0].Timestamp
	if (p.Keyframe && p.Kind == media.KindVideo) || p.SequenceHeader || p.Kind == media.KindData ||
		len(sub.held) >= holdPackets || p.Timestamp < first || p.Timestamp-first >= holdMedia {
		sub.release(hasVideo)
		return false
	}
	return true
}

// release hands the held packets over, in order. Called with stream.mu held.
func (sub *Subscriber) release(hasVideo bool) {
	for _, q := range sub.held {
		if sub.closed {
			break
		}
		sub.offer(q, hasVideo)
	}
	clear(sub.held)
	sub.held = sub.held[:0]
}

// armRelease starts the wall-clock bound of the held packets. Called with s.mu held.
func (s *Stream) armRelease() {
	s.timerArmed = true
	if s.releaseTimer == nil {
		s.releaseTimer = time.AfterFunc(s.hub.holdWall, s.releaseHeld)
		return
	}
	s.releaseTimer.Reset(s.hub.holdWall)
}

// releaseHeld hands every internal subscriber what it holds (the timer's end).
func (s *Stream) releaseHeld() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timerArmed = false
	hasVideo := s.videoHdr != nil
	for _, sub := range s.subs {
		if len(sub.held) > 0 {
			sub.release(hasVideo)
		}
	}
}

// cache keeps what a new subscriber needs to start at once: codec headers, metadata
// and the current GOP.
func (s *Stream) cache(p *media.Packet) {
	switch {
	case p.Kind == media.KindData:
		s.meta = p
		return
	case p.SequenceHeader && p.Kind == media.KindVideo:
		s.videoHdr = p
		return
	case p.SequenceHeader:
		s.audioHdr = p
		return
	case p.Kind == media.KindVideo && p.Keyframe:
		clear(s.gop)
		s.gop, s.gopBytes = s.gop[:0], 0
	case len(s.gop) == 0:
		return // no keyframe yet: nothing a viewer could start from
	}
	if len(s.gop) >= s.hub.queue-8 || s.gopBytes+len(p.Tag) > maxGOPBytes {
		// Too long to replay into a fresh queue: stop caching until the next keyframe.
		clear(s.gop)
		s.gop, s.gopBytes = s.gop[:0], 0
		return
	}
	s.gop = append(s.gop, p)
	s.gopBytes += len(p.Tag)
}

// Info is a snapshot of the stream's codec headers, for outputs that need them up front.
type Info struct {
	HasVideo, HasAudio bool
	VideoHeader        *media.Packet
	AudioHeader        *media.Packet
}

// Subscribe adds a reader. Its queue starts with the metadata, the sequence headers and
// the cached GOP, so playback can start on a keyframe at once. queue <= 0 takes the
// hub's default length.
func (s *Stream) Subscribe(queue int) (*Subscriber, Info, error) {
	return s.subscribe(queue, false)
}

// SubscribeNoDrop is Subscribe for internal readers (recorder, HLS muxer) that must never
// be disconnected: on overflow they skip to the next keyframe and Skipped counts the
// loss, which they detect and report.
func (s *Stream) SubscribeNoDrop(queue int) (*Subscriber, Info, error) {
	return s.subscribe(queue, true)
}

func (s *Stream) subscribe(queue int, noDrop bool) (*Subscriber, Info, error) {
	if queue <= 0 {
		queue = s.hub.queue
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, Info{}, ErrStreamNotFound
	}
	sub := &Subscriber{stream: s, noDrop: noDrop, q: newQueue(max(queue, len(s.gop)+3))}
	info := Info{HasVideo: s.videoHdr != nil, HasAudio: s.audioHdr != nil, VideoHeader: s.videoHdr, AudioHeader: s.audioHdr}
	// The metadata goes first and at 0: FFmpeg's FLV demuxer takes onMetaData as the
	// header only at timestamp 0 and lists a later one as an extra data stream. The
	// codec headers are stamped with the GOP's start time so the new viewer's timeline
	// does not jump from 0 to the stream's current time.
	var start uint32
	if len(s.gop) > 0 {
		start = s.gop[0].Timestamp
	}
	for _, h := range []struct {
		p  *media.Packet
		ts uint32
	}{{s.meta, 0}, {s.videoHdr, start}, {s.audioHdr, start}} {
		if p := h.p; p != nil {
			if p.Timestamp != h.ts {
				p = p.WithTimestamp(h.ts)
			}
			sub.q.push(p)
		}
	}
	for _, p := range s.gop {
		sub.q.push(p) // the queue's limit leaves room for the GOP and the headers
	}
	// A subscriber that joined before the first keyframe waits for one.
	sub.skipping = len(s.gop) == 0 && s.videoHdr != nil
	s.subs = append(s.subs[:len(s.subs):len(s.subs)], sub)
	return sub, info, nil
}

// Close ends the stream: subscribers drain what they have and then see the end.
func (s *Stream) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.releaseTimer != nil {
		s.releaseTimer.Stop()
	}
	hasVideo := s.videoHdr != nil
	for _, sub := range s.subs {
		sub.release(hasVideo) // what the publisher sent last is recorded too
		sub.close(nil)
	}
	s.subs = nil
	s.mu.Unlock()
	s.hub.remove(s)
}

// Viewers returns the number of subscribers.
func (s *Stream) Viewers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// ErrTooSlow is the reason a subscriber is dropped when it stays behind.
var ErrTooSlow = errors.New("viewer too slow: queue still full at the next keyframe")

// Subscriber is one reader of a stream. It receives packets (Next, Packets) until the
// stream ends or it is dropped for being too slow (Err tells which).
type Subscriber struct {
	stream *Stream
	q      *queue
	noDrop bool
	held   []*media.Packet // internal subscribers: packets not handed over yet (hold)

	// Guarded by stream.mu.
	proto      Protocol
	skipping   bool // dropping until the next keyframe after an overflow
	lostHeader bool // a sequence header was dropped while skipping: resend on resume
	closed     bool
	err        error
	onDrop     func()

	// Skipped counts packets this subscriber lost to overflows.
	Skipped atomic.Int64
}

// Next returns the next packet, waiting for one; ok is false once the subscription
// has ended and everything queued before has been returned. One goroutine reads a
// subscriber.
func (sub *Subscriber) Next() (p *media.Packet, ok bool) {
	for {
		p, ended := sub.q.pop()
		switch {
		case p != nil:
			return p, true
		case ended:
			return nil, false
		}
		<-sub.q.ready
	}
}

// TryNext returns the next packet if one is queued, without waiting.
func (sub *Subscriber) TryNext() (p *media.Packet, ok bool) {
	p, _ = sub.q.pop()
	return p, p != nil
}

// Packets yields the packets, in order, until the subscription ends (Next in a loop).
func (sub *Subscriber) Packets() iter.Seq[*media.Packet] {
	return func(yield func(*media.Packet) bool) {
		for p, ok := sub.Next(); ok && yield(p); p, ok = sub.Next() {
		}
	}
}

// Ready receives a value when packets may be waiting or the subscription ended: for a
// reader that also waits on something else (then TryNext).
func (sub *Subscriber) Ready() <-chan struct{} { return sub.q.ready }

// Len is how many packets are queued.
func (sub *Subscriber) Len() int { return sub.q.len() }

// Err is nil when the stream ended normally, ErrTooSlow when the subscriber was dropped.
// Call it once Next has returned false.
func (sub *Subscriber) Err() error {
	sub.stream.mu.Lock()
	defer sub.stream.mu.Unlock()
	return sub.err
}

// offer queues p without blocking. On overflow the subscriber skips to the next keyframe;
// if its queue is still full then, it is dropped. Called with stream.mu held.
func (sub *Subscriber) offer(p *media.Packet, hasVideo bool) {
	if sub.skipping {
		resume := p.SequenceHeader || p.Kind == media.KindData ||
			(p.Keyframe && (p.Kind == media.KindVideo || !hasVideo))
		if !resume {
			sub.skip()
			return
		}
	}
	if sub.skipping && sub.lostHeader && !p.SequenceHeader && sub.q.free() > 3 {
		// Resuming after a codec change was skipped: the decoder needs the new headers.
		for _, h := range []*media.Packet{sub.stream.videoHdr, sub.stream.audioHdr} {
			if h != nil {
				sub.q.push(h)
			}
		}
		sub.lostHeader = false
	}
	if !sub.q.push(p) {
		if p.SequenceHeader {
			sub.lostHeader = true
		}
		if sub.skipping && p.Keyframe && !p.SequenceHeader && !sub.noDrop {
			sub.stream.log.Warn("dropping viewer: it stayed behind for a whole GOP", "skipped", sub.Skipped.Load())
			sub.close(ErrTooSlow)
			sub.stream.drops++
			sub.stream.removeLocked(sub)
			if sub.onDrop != nil {
				sub.onDrop()
			}
			return
		}
		sub.skipping = true
		sub.skip()
		return
	}
	sub.stream.bytesOut[sub.proto] += int64(len(p.Tag))
	if !p.SequenceHeader && p.Kind != media.KindData {
		sub.skipping = false
	}
}

// skip counts a packet lost to an overflow, for the subscriber and the stream's stats.
// Called with stream.mu held.
func (sub *Subscriber) skip() {
	sub.Skipped.Add(1)
	if sub.noDrop {
		sub.stream.internalSkipped++
	} else {
		sub.stream.viewerSkipped++
	}
}

// OnDrop sets f to be called when the subscriber is dropped for being too slow, so its
// writer can abort a blocked write at once. f runs with the stream locked: it must
// not block (setting a deadline on a connection is the intended use).
func (sub *Subscriber) OnDrop(f func()) {
	sub.stream.mu.Lock()
	defer sub.stream.mu.Unlock()
	sub.onDrop = f
}

// Close unsubscribes. Safe to call more than once and after the stream ended.
func (sub *Subscriber) Close() {
	s := sub.stream
	s.mu.Lock()
	defer s.mu.Unlock()
	if !sub.closed {
		sub.close(nil)
		s.removeLocked(sub)
	}
}

func (sub *Subscriber) close(err error) {
	if !sub.closed {
		sub.closed, sub.err = true, err
		sub.q.end()
		clear(sub.held)
		sub.held = nil
	}
}

func (s *Stream) removeLocked(sub *Subscriber) {
	for i, x := range s.subs {
		if x == sub {
			n := make([]*Subscriber, 0, len(s.subs)-1)
			s.subs = append(append(n, s.subs[:i]...), s.subs[i+1:]...)
			return
		}
	}
}
