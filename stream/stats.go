package stream

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livetape/livetape/media"
)

// Protocol names a kind of viewer, for the per-protocol counts in stats and metrics.
type Protocol uint8

// Viewer protocols. ProtoInternal is a reader of livetape's own (the recorder, the HLS
// muxer): it is not a viewer.
const (
	ProtoInternal Protocol = iota
	ProtoHTTPFLV
	ProtoRTMP
	ProtoHLS
	numProtocols
)

// Protocols lists the viewer protocols, in the order stats report them.
var Protocols = []Protocol{ProtoHTTPFLV, ProtoRTMP, ProtoHLS}

func (p Protocol) String() string {
	switch p {
	case ProtoHTTPFLV:
		return "http-flv"
	case ProtoRTMP:
		return "rtmp"
	case ProtoHLS:
		return "hls"
	}
	return "internal"
}

// rateWindow is the span over which the current bitrates and frame rate are measured,
// in seconds of the publisher's timestamps (media time, not wall time: a stats answer
// says what was pushed, whatever the server's load).
const rateWindow = 5

// rateBucket holds what arrived in one second of media time.
type rateBucket struct {
	second              int64 // timestamp / 1000; -1 when unused
	videoBytes, audio   int64
	videoFrames, frames int64
}

// ingest is what the publisher sent, counted in WritePacket under Stream.mu. It
// allocates nothing per packet: the codec headers are parsed only when they change.
type ingest struct {
	videoBytes, audioBytes   int64 // media payload (FLV tag bodies)
	videoFrames, audioFrames int64
	keyframes                int64
	firstTS, lastTS          int64 // media time of the first and latest frame; -1 before the first
	lastKeyTS, keyInterval   int64 // ms between the last two keyframes
	buckets                  [rateWindow + 2]rateBucket

	videoCodec, audioCodec  string // RFC 6381 ("avc1.64001f", "mp4a.40.2")
	profile, level          uint8  // from the AVCDecoderConfigurationRecord
	width, height           int
	sampleRate, channels    int
	videoHdrTag, audioHdrTg *media.Packet // the headers parsed last, to skip repeats
}

func (in *ingest) reset() {
	in.firstTS, in.lastTS, in.lastKeyTS = -1, -1, -1
	for i := range in.buckets {
		in.buckets[i].second = -1
	}
}

// count adds p (not a sequence header, not metadata) to the counters.
func (in *ingest) count(p *media.Packet) {
	ts := int64(p.Timestamp)
	if in.firstTS < 0 {
		in.firstTS = ts
	}
	in.lastTS = max(in.lastTS, ts)
	sec := ts / 1000
	b := &in.buckets[sec%int64(len(in.buckets))]
	if b.second != sec {
		*b = rateBucket{second: sec}
	}
	n := int64(len(p.Tag) - media.TagHeaderSize - media.PrevSizeLen)
	if p.Kind == media.KindVideo {
		in.videoBytes += n
		in.videoFrames++
		b.videoBytes += n
		b.videoFrames++
		if p.Keyframe {
			in.keyframes++
			if in.lastKeyTS >= 0 && ts > in.lastKeyTS {
				in.keyInterval = ts - in.lastKeyTS
			}
			in.lastKeyTS = ts
		}
		return
	}
	in.audioBytes += n
	in.audioFrames++
	b.audio += n
	b.frames++
}

// header notes a sequence header's codec configuration (parsed only when it changed).
func (in *ingest) header(p *media.Packet) {
	if p.Kind == media.KindVideo {
		if in.videoHdrTag != nil && string(in.videoHdrTag.Payload()) == string(p.Payload()) {
			return
		}
		in.videoHdrTag = p
		if c, err := media.ParseAVCConfig(p.Payload()); err == nil {
			in.videoCodec, in.profile, in.level, in.width, in.height = c.Codec(), c.Profile, c.Level, c.Width, c.Height
		}
		return
	}
	if in.audioHdrTg != nil && string(in.audioHdrTg.Payload()) == string(p.Payload()) {
		return
	}
	in.audioHdrTg = p
	if c, err := media.ParseAACConfig(p.Payload()); err == nil {
		in.audioCodec, in.sampleRate, in.channels = c.Codec(), c.SampleRate, int(c.Channels)
	}
}

// Stats is a snapshot of a live stream's counters.
type Stats struct {
	App, StreamID string
	PushID        string
	ClientAddr    string // the publisher's address (host:port)
	ClientApp     string // the publisher's software, from RTMP connect's flashVer
	Started       time.Time
	StreamParam   string // the push URL's query without its credentials

	VideoCodec, AudioCodec string // RFC 6381 codecs strings; empty when absent
	Profile, Level         uint8  // H.264 profile_idc and level_idc
	Width, Height          int
	SampleRate, Channels   int

	// Rates over the last 5 complete seconds of media time, and since the first frame
	// (media time too).
	FPS, FPSAverage                    float64
	VideoKbps, AudioKbps               float64
	VideoKbpsAverage, AudioKbpsAverage float64
	KeyframeInterval                   time.Duration // between the last two keyframes
	MediaDuration                      time.Duration // last frame's timestamp - first frame's
	VideoFrames, AudioFrames           int64
	BytesIn                            int64 // FLV tags written by the publisher (headers included)
	Packets                            int64
	Viewers                            map[Protocol]int
	BytesOut                           map[Protocol]int64 // queued to viewers (HLS: playlists and segments sent)
	Skipped                            int64              // packets viewers lost to full queues (they skipped to a keyframe)
	Dropped                            int64              // viewers disconnected for staying behind a whole GOP
	InternalSkipped                    int64              // packets the recorder or the HLS muxer lost (each reports it)
}

// Stats returns a snapshot of the stream's counters. HLS viewers are the distinct
// clients (address and User-Agent) that fetched the playlist within hlsWindow.
func (s *Stream) Stats() Stats {
	now := time.Now()
	s.mu.Lock()
	in := &s.in
	st := Stats{
		App: s.Params.App, StreamID: s.Params.StreamID, Started: s.Started, StreamParam: s.Params.StreamParam(),
		VideoCodec: in.videoCodec, AudioCodec: in.audioCodec, Profile: in.profile, Level: in.level,
		Width: in.width, Height: in.height, SampleRate: in.sampleRate, Channels: in.channels,
		KeyframeInterval: time.Duration(in.keyInterval) * time.Millisecond,
		VideoFrames:      in.videoFrames, AudioFrames: in.audioFrames,
		Viewers: make(map[Protocol]int, numProtocols), BytesOut: make(map[Protocol]int64, numProtocols),
		Skipped: s.viewerSkipped, Dropped: s.drops, InternalSkipped: s.internalSkipped,
	}
	if in.firstTS >= 0 {
		d := in.lastTS - in.firstTS
		st.MediaDuration = time.Duration(d) * time.Millisecond
		// The last second is still arriving: rates count the complete seconds before it.
		cur := in.lastTS / 1000
		var vb, ab, vf int64
		for _, b := range in.buckets {
			if b.second >= cur-rateWindow && b.second < cur {
				vb, ab, vf = vb+b.videoBytes, ab+b.audio, vf+b.videoFrames
			}
		}
		// A stream younger than the window is measured over what it has.
		span := float64(min(rateWindow, cur-in.firstTS/1000))
		if span > 0 {
			st.VideoKbps, st.AudioKbps, st.FPS = float64(vb)*8/1000/span, float64(ab)*8/1000/span, float64(vf)/span
		}
		if d > 0 {
			sec := float64(d) / 1000
			st.VideoKbpsAverage = float64(in.videoBytes) * 8 / 1000 / sec
			st.AudioKbpsAverage = float64(in.audioBytes) * 8 / 1000 / sec
			st.FPSAverage = float64(max(in.videoFrames-1, 0)) / sec
		}
	}
	for _, sub := range s.subs {
		st.Viewers[sub.proto]++
	}
	for _, p := range Protocols {
		st.BytesOut[p] = s.bytesOut[p]
	}
	delete(st.Viewers, ProtoInternal)
	if pub := s.pub; pub != nil {
		st.PushID, st.ClientAddr, st.ClientApp = pub.PushID, pub.ClientAddr, pub.ClientApp
	}
	s.mu.Unlock()
	st.Packets, st.BytesIn = s.packets.Load(), s.bytes.Load()
	hlsN, hlsBytes := s.hls.viewers(now)
	st.Viewers[ProtoHLS] += hlsN
	st.BytesOut[ProtoHLS] += hlsBytes
	return st
}

// SetPublication links the stream to its publication, for the publisher's details in
// Stats.
func (s *Stream) SetPublication(p *Publication) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pub = p
}

// SubscribeAs is Subscribe for a viewer of protocol proto, counted in Stats.
func (s *Stream) SubscribeAs(proto Protocol, queue int) (*Subscriber, Info, error) {
	sub, info, err := s.subscribe(queue, false)
	if err == nil {
		s.mu.Lock()
		sub.proto = proto
		s.mu.Unlock()
	}
	return sub, info, err
}

// SetHLSWindow sets how long an HLS client counts as a viewer after its last playlist
// request: players reload the playlist about once per target duration, so a client
// that missed two reloads has left.
func (s *Stream) SetHLSWindow(d time.Duration) {
	s.hls.mu.Lock()
	defer s.hls.mu.Unlock()
	s.hls.window = d
}

// HLSPlaylistServed counts an HLS playlist request of client (its address without
// the port, and its User-Agent): a viewer while it keeps reloading.
func (s *Stream) HLSPlaylistServed(client string, bytes int) {
	s.hls.seen(client, time.Now(), int64(bytes))
}

// HLSSegmentServed counts the bytes of an HLS segment sent to a viewer.
func (s *Stream) HLSSegmentServed(bytes int) {
	s.hls.mu.Lock()
	s.hls.bytes += int64(bytes)
	s.hls.mu.Unlock()
}

// maxHLSClients bounds the clients remembered per stream: a flood of fake User-Agents
// cannot grow the map without limit (beyond it, new clients are not counted).
const maxHLSClients = 100_000

// hlsViewers counts distinct recent HLS clients of one stream.
type hlsViewers struct {
	mu      sync.Mutex
	window  time.Duration
	clients map[string]time.Time // last playlist request
	bytes   int64
}

func (h *hlsViewers) seen(client string, now time.Time, n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bytes += n
	if h.clients == nil {
		h.clients = make(map[string]time.Time)
	}
	if _, ok := h.clients[client]; !ok && len(h.clients) >= maxHLSClients {
		h.prune(now)
		if len(h.clients) >= maxHLSClients {
			return
		}
	}
	h.clients[client] = now
}

func (h *hlsViewers) prune(now time.Time) {
	for c, t := range h.clients {
		if now.Sub(t) > h.windowOrDefault() {
			delete(h.clients, c)
		}
	}
}

func (h *hlsViewers) windowOrDefault() time.Duration {
	if h.window > 0 {
		return h.window
	}
	return 4 * time.Second
}

func (h *hlsViewers) viewers(now time.Time) (int, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prune(now)
	return len(h.clients), h.bytes
}

// HLSClient names an HLS client for viewer counting: its address without the port,
// and its User-Agent (several players behind one NAT count apart when their
// software differs; identical ones behind one address count once).
func HLSClient(remoteAddr, userAgent string) string {
	host := remoteAddr
	if i := strings.LastIndexByte(remoteAddr, ':'); i >= 0 {
		host = remoteAddr[:i]
	}
	if len(userAgent) > 256 {
		userAgent = userAgent[:256]
	}
	return host + "\x00" + userAgent
}

// AllStats returns the stats of every live stream, ordered by app and stream id.
func (h *Hub) AllStats() []Stats {
	streams := h.Streams()
	out := make([]Stats, 0, len(streams))
	for _, s := range streams {
		out = append(out, s.Stats())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].StreamID < out[j].StreamID
	})
	return out
}
