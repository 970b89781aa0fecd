package live

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livetape/livetape/packager/hls"
	"github.com/livetape/livetape/stream"
)

// hlsQueue is the HLS muxer's queue: it must absorb a GOP and a slow moment of muxing
// (1024 packets are 14 s of a 30 fps stream with AAC; a channel's buffer is allocated
// whole, 8 KiB per 1024).
const hlsQueue = 1024

// hlsKeepEnded is how long the playlist of an ended stream stays, with #EXT-X-ENDLIST,
// so players see the end instead of a 404.
const hlsKeepEnded = time.Minute

// hlsKeepEvicted is how many segments that left the playlist stay fetchable, for players
// that loaded the previous playlist version.
const hlsKeepEvicted = 3

// hlsOutput cuts every live stream into TS segment files from the moment it is
// published (no lazy start), so the first playlist is ready one segment after publish.
// Segments live in files (the page cache, not the Go heap, holds them, and they are
// served with sendfile): HLSConfig.Dir/run-*/{app}/{stream}/{n}/seg-N.ts, n counting
// the pushes of the process so a new push never meets an old push's files. A segment file
// is removed hlsKeepEvicted segments after it leaves the playlist, and a stream's
// folder hlsKeepEnded after the push ends.
type hlsOutput struct {
	cfg       HLSConfig
	dir       string
	keepEnded time.Duration
	log       *slog.Logger
	pushes    atomic.Int64

	mu      sync.Mutex
	streams map[string]*hlsStream
}

type hlsStream struct {
	dir      string // this push's folder
	playlist *hls.LivePlaylist
	ready    chan struct{} // closed when the first segment is in the playlist

	mu       sync.Mutex
	segments map[int]bool // segments that can be served
	ended    bool
	removed  bool // the folder is gone
}

// hlsRunMarker marks a folder as live HLS segments of one livetape process, so a later
// process may remove it: nothing else in the configured folder is ever removed.
const hlsRunMarker = ".livetape-live-hls"

// newHLSOutput makes the folder of this process's live segments: a new run-* folder in
// parent, after removing the run-* folders a previous process left there (live segments
// do not outlive the process). With parent empty the folder is a private temporary one.
// It does not fail: a folder that cannot be made is logged, and the segments then
// fail (and are logged) one by one.
func newHLSOutput(cfg HLSConfig, log *slog.Logger) *hlsOutput {
	log = log.With("output", "hls")
	h := &hlsOutput{cfg: cfg, keepEnded: hlsKeepEnded, log: log, streams: make(map[string]*hlsStream)}
	parent := cfg.Dir
	if parent == "" {
		parent = os.TempDir()
	} else {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			log.Error("live HLS folder cannot be made: no HLS segments", "dir", parent, "err", err)
		}
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			stale := filepath.Join(parent, e.Name())
			if _, err := os.Stat(filepath.Join(stale, hlsRunMarker)); err == nil && strings.HasPrefix(e.Name(), "run-") {
				os.RemoveAll(stale)
			}
		}
	}
	dir, err := os.MkdirTemp(parent, "run-")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, hlsRunMarker), nil, 0o644)
	}
	if err != nil {
		log.Error("live HLS folder cannot be made: no HLS segments", "dir", parent, "err", err)
		dir = filepath.Join(parent, "run-unusable")
	}
	h.dir = dir
	return h
}

// start begins segmenting s; a previous, ended HLS stream of the same key is replaced.
func (h *hlsOutput) start(s *stream.Stream) {
	sub, _, err := s.SubscribeNoDrop(hlsQueue)
	if err != nil {
		return
	}
	key := s.Params.Key()
	hs := &hlsStream{
		dir:      filepath.Join(h.dir, s.Params.App, s.Params.StreamID, strconv.FormatInt(h.pushes.Add(1), 10)),
		playlist: hls.NewLivePlaylist(h.cfg.Window),
		ready:    make(chan struct{}),
		segments: make(map[int]bool),
	}
	h.mu.Lock()
	old := h.streams[key]
	h.streams[key] = hs
	h.mu.Unlock()
	if old != nil {
		old.remove(h.dir)
	}
	go h.run(key, s.Params.StreamID, sub, hs)
}

func (h *hlsOutput) run(key, id string, sub *stream.Subscriber, hs *hlsStream) {
	log := h.log.With("stream", key)
	seg := hls.NewSegmenter(hls.SegmenterConfig{Target: h.cfg.SegmentDuration, Create: func(seq int) (io.WriteCloser, error) {
		return hs.create(seq) // the segmenter buffers its writes
	}})
	failed := false
	for p := range sub.Packets() {
		done, err := seg.WritePacket(p)
		if err == nil && sub.Len() == 0 {
			err = seg.Flush() // caught up: the buffer goes back to the shared pool
		}
		if err != nil && !failed {
			// Once per run of failures (a full disk fails every packet): logged again
			// after a segment got through.
			log.Warn("hls segment lost", "err", err)
			failed = true
		}
		if done != nil {
			failed = false
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
	time.AfterFunc(h.keepEnded, func() {
		h.mu.Lock()
		if h.streams[key] == hs {
			delete(h.streams, key)
		}
		h.mu.Unlock()
		hs.remove(h.dir)
	})
}

// close removes every stream's files and the process's folder (the server stopped).
func (h *hlsOutput) close() {
	h.mu.Lock()
	streams := h.streams
	h.streams = make(map[string]*hlsStream)
	h.mu.Unlock()
	for _, hs := range streams {
		hs.remove(h.dir)
	}
	os.RemoveAll(h.dir)
}

// create opens segment seq's file, unless the push's folder was removed already.
func (hs *hlsStream) create(seq int) (*os.File, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.removed {
		return nil, fmt.Errorf("live hls: %s was removed", hs.dir)
	}
	if err := os.MkdirAll(hs.dir, 0o755); err != nil {
		return nil, err
	}
	return os.Create(hs.segmentPath(seq))
}

func (hs *hlsStream) segmentPath(seq int) string {
	return filepath.Join(hs.dir, hls.SegmentName(seq))
}

func (hs *hlsStream) add(id string, seg *hls.Segment) {
	if seg == nil {
		return
	}
	hs.mu.Lock()
	hs.segments[seg.Seq] = true
	hs.mu.Unlock()
	// URIs are relative to /{app}/{id}.m3u8.
	if old, ok := hs.playlist.Add(seg.Entry(id + "/" + hls.SegmentName(seg.Seq))); ok {
		gone := old.Seq - hlsKeepEvicted
		hs.mu.Lock()
		if hs.segments[gone] {
			delete(hs.segments, gone)
			os.Remove(hs.segmentPath(gone)) // a viewer still reading it keeps its open file
		}
		hs.mu.Unlock()
	}
	select {
	case <-hs.ready:
	default:
		close(hs.ready)
	}
}

// remove deletes the push's folder, and its stream's and app's folders once empty.
func (hs *hlsStream) remove(root string) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.removed {
		return
	}
	hs.removed = true
	clear(hs.segments)
	os.RemoveAll(hs.dir)
	for dir := filepath.Dir(hs.dir); dir != root && strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
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
	var f *os.File
	if hs.segments[seq] {
		f, _ = os.Open(hs.segmentPath(seq)) // opened under the lock: removal waits for it
	}
	hs.mu.Unlock()
	if f == nil {
		http.Error(w, fmt.Sprintf("segment %d of %s/%s is gone or not made yet", seq, app, id), http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "video/mp2t")
	w.Header().Set("Cache-Control", "max-age=60")
	http.ServeContent(w, r, "", time.Time{}, f) // sendfile
	if fi, err := f.Stat(); err == nil {
		if st := s.hub.Lookup(app, id); st != nil {
			st.HLSSegmentServed(int(fi.Size()))
		}
	}
}
