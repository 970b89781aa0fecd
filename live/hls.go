package live

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/livetape/livetape/packager/hls"
	"github.com/livetape/livetape/stream"
)

// hlsQueue is the HLS muxer's queue: it must absorb a GOP and a slow moment of muxing.
const hlsQueue = 4096

// hlsKeepEnded is how long the playlist of an ended stream stays, with #EXT-X-ENDLIST,
// so players see the end instead of a 404.
const hlsKeepEnded = time.Minute

// hlsKeepEvicted is how many segments that left the playlist stay fetchable, for players
// that loaded the previous playlist version.
const hlsKeepEvicted = 3

// hlsOutput cuts every live stream into in-memory TS segments from the moment it is
// published (no lazy start), so the first playlist is ready one segment after publish.
type hlsOutput struct {
	cfg HLSConfig
	log *slog.Logger

	mu      sync.Mutex
	streams map[string]*hlsStream
}

type hlsStream struct {
	playlist *hls.LivePlaylist
	ready    chan struct{} // closed when the first segment is in the playlist

	mu       sync.Mutex
	segments map[int][]byte
	ended    bool
}

func newHLSOutput(cfg HLSConfig, log *slog.Logger) *hlsOutput {
	return &hlsOutput{cfg: cfg, log: log.With("output", "hls"), streams: make(map[string]*hlsStream)}
}

// start begins segmenting s; a previous, ended HLS stream of the same key is replaced.
func (h *hlsOutput) start(s *stream.Stream) {
	sub, _, err := s.SubscribeNoDrop(hlsQueue)
	if err != nil {
		return
	}
	hs := &hlsStream{playlist: hls.NewLivePlaylist(h.cfg.Window), ready: make(chan struct{}), segments: make(map[int][]byte)}
	key := s.Params.Key()
	h.mu.Lock()
	h.streams[key] = hs
	h.mu.Unlock()
	go h.run(key, s.Params.StreamID, sub, hs)
}

func (h *hlsOutput) run(key, id string, sub *stream.Subscriber, hs *hlsStream) {
	log := h.log.With("stream", key)
	seg := hls.NewSegmenter(hls.SegmenterConfig{Target: h.cfg.SegmentDuration})
	for p := range sub.C() {
		done, err := seg.WritePacket(p)
		if err != nil {
			log.Warn("hls segment lost", "err", err)
		}
		hs.add(id, done)
	}
	last, err := seg.Close()
	if err != nil {
		log.Warn("hls last segment lost", "err", err)
	}
	hs.add(id, last)
	hs.playlist.End()
	hs.mu.Lock()
	hs.ended = true
	hs.mu.Unlock()
	if n := sub.Skipped.Load(); n > 0 {
		log.Error("hls muxer fell behind the stream and skipped packets", "skipped", n)
	}
	time.AfterFunc(hlsKeepEnded, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.streams[key] == hs {
			delete(h.streams, key)
		}
	})
}

func (hs *hlsStream) add(id string, seg *hls.Segment) {
	if seg == nil {
		return
	}
	hs.mu.Lock()
	hs.segments[seg.Seq] = seg.Data
	hs.mu.Unlock()
	// URIs are relative to /{app}/{id}.m3u8.
	if old, ok := hs.playlist.Add(seg.Entry(id + "/" + hls.SegmentName(seg.Seq))); ok {
		hs.mu.Lock()
		delete(hs.segments, old.Seq-hlsKeepEvicted)
		hs.mu.Unlock()
	}
	select {
	case <-hs.ready:
	default:
		close(hs.ready)
	}
}

func (h *hlsOutput) lookup(key string) *hlsStream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams[key]
}

// servePlaylist answers GET /{app}/{id}.m3u8. A stream published less than a segment
// ago has no playlist yet: the request waits for the first segment. An ended stream's
// playlist (with #EXT-X-ENDLIST) is served for hlsKeepEnded after the end.
func (s *Server) servePlaylist(w http.ResponseWriter, r *http.Request, app, id string) {
	if err := s.checkPlay(id, r.URL.Query()); err != nil {
		playError(w, err)
		return
	}
	hs := s.hls.lookup(app + "/" + id)
	if hs == nil {
		if s.hub.Lookup(app, id) == nil {
			playError(w, fmt.Errorf("%w: %s/%s is not live", stream.ErrStreamNotFound, app, id))
			return
		}
		http.Error(w, "stream is live but HLS is not ready", http.StatusServiceUnavailable)
		return
	}
	select {
	case <-hs.ready:
	case <-r.Context().Done():
		return
	case <-time.After(4*s.cfg.HLS.SegmentDuration + 5*time.Second):
		http.Error(w, "no HLS segment yet: is the stream sending video keyframes?", http.StatusServiceUnavailable)
		return
	}
	body := hs.playlist.Bytes()
	if q := r.URL.RawQuery; q != "" && s.cfg.PlayKey != "" {
		// Segments need the same signature as the playlist.
		body = bytes.ReplaceAll(body, []byte(".ts\n"), []byte(".ts?"+q+"\n"))
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(body)
	if st := s.hub.Lookup(app, id); st != nil {
		countHLSViewer(st, hs, s.cfg.HLS.SegmentDuration, r, len(body))
	}
}

// handleSegment answers GET /{app}/{id}/seg-N.ts.
func (s *Server) handleSegment(w http.ResponseWriter, r *http.Request) {
	app, id, name := r.PathValue("app"), r.PathValue("id"), r.PathValue("segment")
	seq, ok := hls.ParseSegmentName(name)
	if !ok {
		notFoundURL(w, r)
		return
	}
	if err := s.checkPlay(id, r.URL.Query()); err != nil {
		playError(w, err)
		return
	}
	hs := s.hls.lookup(app + "/" + id)
	if hs == nil {
		http.Error(w, fmt.Sprintf("%s/%s is not live", app, id), http.StatusNotFound)
		return
	}
	hs.mu.Lock()
	data, ok := hs.segments[seq]
	hs.mu.Unlock()
	if !ok {
		http.Error(w, fmt.Sprintf("segment %d of %s/%s is gone or not made yet", seq, app, id), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "video/mp2t")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Cache-Control", "max-age=60")
	w.Write(data)
	if st := s.hub.Lookup(app, id); st != nil {
		st.HLSSegmentServed(len(data))
	}
}
