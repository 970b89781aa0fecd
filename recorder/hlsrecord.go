package recorder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/hls"
	"github.com/livetape/livetape/stream"
)

// An HLS recording is one playlist per broadcast, not one per fragment: record_interval
// cuts MP4 and FLV only, and a timeline break or a codec change within a push is an
// EXT-X-DISCONTINUITY. So the HLS writer lives at the session (push) level, and hands
// each segment on as it closes, so that a long push does not pile up in the spool:
//
//	SPOOL/{app}/{stream_id}/{push_id}/hls/seg-N.ts    a segment (being written, or closed)
//	SPOOL/{app}/{stream_id}/{push_id}/hls/seg-N.json  its record: it is closed and durable
//	SPOOL/{app}/{stream_id}/{push_id}/hls/push.json   the push: segments closed, ended
//
// The sink (the job queue) uploads the segments and joins the pushes of a broadcast
// into one playlist; the spool keeps a closed segment until storage holds it.
const (
	hlsDirName  = "hls"
	hlsPushFile = "push.json"
)

// HLSFileID is the file id of the HLS recording of a broadcast.
func HLSFileID(broadcastID string) string { return broadcastID + "_hls" }

// broadcastOf is the broadcast of a push and its number in it; a publication that
// names none (made by hand) is a broadcast of its own.
func broadcastOf(p *stream.Publication) (id string, push int) {
	if p.BroadcastID == "" {
		return p.Params.StreamID + "_" + p.PushID, 1
	}
	return p.BroadcastID, max(p.BroadcastPush, 1)
}

// HLSSegment is the record of a closed HLS segment (seg-N.json beside it).
type HLSSegment struct {
	FileID        string `json:"file_id"` // of the broadcast's recording (HLSFileID)
	App           string `json:"app"`
	StreamID      string `json:"stream_id"`
	PushID        string `json:"push_id"`
	BroadcastID   string `json:"broadcast_id"`
	BroadcastPush int    `json:"broadcast_push"`
	// Seq numbers the push's segments from 0, without holes.
	Seq int `json:"seq"`
	// Duration is the media time in seconds (the EXTINF).
	Duration float64 `json:"duration"`
	// Discontinuity: a new timeline or codec configuration starts with this segment.
	Discontinuity bool      `json:"discontinuity,omitempty"`
	Size          int64     `json:"size"`
	StartTime     time.Time `json:"start_time"`
	EndTime       time.Time `json:"end_time"`
	PushStart     time.Time `json:"push_start"`
	StreamParam   string    `json:"stream_param"`
	Recovered     bool      `json:"recovered,omitempty"`

	dir string
}

// HLSPush is the record of a push's HLS recording (push.json): how many segments it
// closed, and whether it ended. Once ended and handed on it leaves the spool.
type HLSPush struct {
	FileID        string    `json:"file_id"`
	App           string    `json:"app"`
	StreamID      string    `json:"stream_id"`
	PushID        string    `json:"push_id"`
	BroadcastID   string    `json:"broadcast_id"`
	BroadcastPush int       `json:"broadcast_push"`
	StartTime     time.Time `json:"start_time"`
	EndTime       time.Time `json:"end_time,omitzero"`
	// Segments is how many segments the push closed: seq 0 to Segments-1.
	Segments int  `json:"segments"`
	Ended    bool `json:"ended"`
	// ReconnectWindow (seconds) is the push's reconnect window: when not 0, the
	// recording ends with its broadcast, not with the push.
	ReconnectWindow float64 `json:"reconnect_window,omitempty"`
	StreamParam     string  `json:"stream_param"`
	Recovered       bool    `json:"recovered,omitempty"`

	dir string
}

// HLSSink receives an HLS recording as it grows; the recorder's Sink implements it
// when it takes HLS recordings (serve's does).
type HLSSink interface {
	// HLSSegmentClosed takes over a closed segment: the spool keeps it until
	// Spool.RemoveHLSSegment. A segment may be handed on more than once (after a
	// restart, from Resubmit).
	HLSSegmentClosed(s *HLSSegment) error
	// HLSPushEnded tells that a push's recording ended after p.Segments segments.
	HLSPushEnded(p *HLSPush) error
}

func segRecordName(seq int) string { return fmt.Sprintf("seg-%d.json", seq) }

// hlsRecording writes the HLS recording of one session.
type hlsRecording struct {
	s    *session
	sink HLSSink
	dir  string
	seg  *hls.Segmenter
	push HLSPush
}

// startHLS starts the session's HLS recording, numbering its segments on from those
// an earlier recording of the same push closed (a recording stopped and started again
// by the API).
func (s *session) startHLS(sink HLSSink) error {
	dir := filepath.Join(s.dir, hlsDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("recorder: hls: %w", err)
	}
	first := 0
	if s.state != nil {
		first = int(s.state.hlsSegments.Load())
	}
	p := s.pub
	bid, n := broadcastOf(p)
	window, _ := s.r.cfg.Broadcast(p.Params)
	h := &hlsRecording{s: s, sink: sink, dir: dir, push: HLSPush{
		FileID: HLSFileID(bid), App: p.Params.App, StreamID: p.Params.StreamID, PushID: p.PushID,
		BroadcastID: bid, BroadcastPush: n, StartTime: time.Now().UTC(),
		Segments: first, StreamParam: p.Params.StreamParam(), ReconnectWindow: window.Seconds(), dir: dir,
	}}
	if err := h.push.save(); err != nil {
		return err
	}
	h.seg = hls.NewSegmenter(hls.SegmenterConfig{Target: hlsTarget, FirstSeq: first, Create: h.create})
	if first > 0 {
		h.seg.Break() // the recording resumes after a pause: a new timeline
	}
	s.hls = h
	return nil
}

// create opens segment seq; closing it makes it durable before its record says so.
func (h *hlsRecording) create(seq int) (io.WriteCloser, error) {
	f, err := os.Create(filepath.Join(h.dir, hls.SegmentName(seq)))
	if err != nil {
		return nil, err
	}
	return syncCloser{f}, nil
}

type syncCloser struct{ *os.File }

func (f syncCloser) Close() error {
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// headers gives the segmenter the sequence headers a fragment starts with; unchanged
// ones change nothing, new ones start a discontinuity.
func (h *hlsRecording) headers(hd headers) {
	for _, p := range []*media.Packet{hd.video, hd.audio} {
		if p != nil {
			h.write(p)
		}
	}
}

// write records a packet with the publisher's timestamp: the segments of a push keep
// one timeline across the fragments of the other formats.
func (h *hlsRecording) write(p *media.Packet) {
	seg, err := h.seg.WritePacket(p)
	h.closed(seg)
	h.writeFailed(err)
}

// writeFailed logs (once) a write error of the segmenter, which drops what it could not
// write and starts the next segment at a keyframe, as a discontinuity.
func (h *hlsRecording) writeFailed(err error) {
	if err != nil {
		h.s.logOnce("hls write", "HLS recording: a packet or segment could not be written; the recording goes on at the next keyframe", "err", err)
	}
}

// flushBuffer writes out what the segmenter buffers (see formatWriter.flushBuffer).
func (h *hlsRecording) flushBuffer() { h.writeFailed(h.seg.Flush()) }

// brk ends the open segment: the next one is a discontinuity (a gap, a timeline break,
// a codec change).
func (h *hlsRecording) brk() {
	seg, err := h.seg.Break()
	h.closed(seg)
	if err != nil {
		h.s.log.Error("HLS recording: segment not closed", "err", err)
	}
}

// closed records a closed segment and hands it on.
func (h *hlsRecording) closed(seg *hls.Segment) {
	if seg == nil {
		return
	}
	now := time.Now().UTC()
	rec := &HLSSegment{
		FileID: h.push.FileID, App: h.push.App, StreamID: h.push.StreamID, PushID: h.push.PushID,
		BroadcastID: h.push.BroadcastID, BroadcastPush: h.push.BroadcastPush, Seq: seg.Seq,
		Duration: seg.Duration, Discontinuity: seg.Discontinuity, Size: seg.Size,
		StartTime: now.Add(-time.Duration(seg.Duration * float64(time.Second))), EndTime: now,
		PushStart: h.push.StartTime, StreamParam: h.push.StreamParam, dir: h.dir,
	}
	if err := rec.save(); err != nil {
		// The segment stays without a record: a restart drops it, as one cut by a crash.
		h.s.log.Error("HLS segment not recorded", "seq", seg.Seq, "err", err)
		return
	}
	h.push.Segments = seg.Seq + 1
	if err := h.push.save(); err != nil {
		h.s.log.Error("HLS push record not updated; the segment records say it at the next start", "err", err)
	}
	if h.s.state != nil {
		h.s.state.hlsSegments.Store(int64(h.push.Segments))
	}
	h.s.r.ctl.closed("hls", seg.Size)
	h.s.r.handOnSegment(h.sink, rec)
}

// finish closes the last segment and hands the push's end on.
func (h *hlsRecording) finish() {
	seg, err := h.seg.Close()
	h.closed(seg)
	if err != nil {
		h.s.log.Error("HLS recording: last segment not closed", "err", err)
	}
	h.push.Ended, h.push.EndTime = true, time.Now().UTC()
	h.s.log.Info("HLS recording of the push ended", "file_id", h.push.FileID, "segments", h.push.Segments)
	if err := h.push.save(); err != nil {
		h.s.log.Error("HLS push record not saved", "err", err)
	}
	h.s.r.handOnPushEnd(h.sink, &h.push)
}

func (r *Recorder) handOnSegment(sink HLSSink, rec *HLSSegment) {
	if err := sink.HLSSegmentClosed(rec); err != nil {
		r.log.Error("HLS segment kept in the spool: sink refused it", "file_id", rec.FileID, "push_id", rec.PushID, "seq", rec.Seq, "err", err)
	}
}

// handOnPushEnd hands on an ended push; once taken, its record leaves the spool.
func (r *Recorder) handOnPushEnd(sink HLSSink, p *HLSPush) bool {
	if err := sink.HLSPushEnded(p); err != nil {
		r.log.Error("HLS push end kept in the spool: sink refused it", "file_id", p.FileID, "push_id", p.PushID, "err", err)
		return false
	}
	if err := os.Remove(filepath.Join(p.dir, hlsPushFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("HLS push record not removed", "err", err)
	}
	r.removeEmptyHLSDir(p.dir)
	return true
}

func (s *HLSSegment) save() error { return saveJSON(filepath.Join(s.dir, segRecordName(s.Seq)), s) }
func (p *HLSPush) save() error    { return saveJSON(filepath.Join(p.dir, hlsPushFile), p) }

// saveJSON writes v atomically (temporary file, fsync, rename).
func saveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recorder: %s: %w", path, err)
	}
	return nil
}

func loadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("recorder: %s: %w", path, err)
	}
	return nil
}

// resubmitHLS hands on again what the HLS folders of the spool hold: every closed
// segment, and the ends of pushes no session records any more (a push cut by a crash
// ends with the segments it closed; the one being written is dropped). It returns how
// many segments were handed on.
func (r *Recorder) resubmitHLS() int {
	sink, ok := r.sink.(HLSSink)
	if !ok {
		return 0
	}
	dirs, _ := filepath.Glob(filepath.Join(r.spool, "*", "*", "*", hlsDirName))
	n := 0
	for _, dir := range dirs {
		n += r.resubmitHLSDir(sink, dir, r.isRecording(filepath.Dir(dir)))
	}
	return n
}

func (r *Recorder) resubmitHLSDir(sink HLSSink, dir string, active bool) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	records := map[int]bool{}
	var segs []*HLSSegment
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".json") {
			continue
		}
		s := &HLSSegment{}
		if err := loadJSON(filepath.Join(dir, name), s); err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // uploaded meanwhile
				r.log.Error("spool: unreadable HLS segment record left alone", "path", filepath.Join(dir, name), "err", err)
			}
			continue
		}
		s.dir = dir
		records[s.Seq] = true
		segs = append(segs, s)
	}
	slices.SortFunc(segs, func(a, b *HLSSegment) int { return a.Seq - b.Seq })
	if !active {
		// A segment without a record was being written when the process died.
		for _, e := range entries {
			seq, ok := hls.ParseSegmentName(e.Name())
			if (ok && !records[seq]) || strings.HasSuffix(e.Name(), ".tmp") {
				r.log.Info("spool: HLS segment cut by a crash dropped", "path", filepath.Join(dir, e.Name()))
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	for _, s := range segs {
		r.handOnSegment(sink, s)
	}
	var p HLSPush
	if active {
		return len(segs)
	}
	if err := loadJSON(filepath.Join(dir, hlsPushFile), &p); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Error("spool: unreadable HLS push record left alone", "dir", dir, "err", err)
		}
		r.removeEmptyHLSDir(dir)
		return len(segs)
	}
	p.dir = dir
	if !p.Ended {
		// Cut by a crash: the push ended with its last closed segment.
		p.Ended, p.Recovered, p.EndTime = true, true, time.Now().UTC()
		if len(segs) > 0 {
			last := segs[len(segs)-1]
			p.Segments, p.EndTime = max(p.Segments, last.Seq+1), last.EndTime
		}
		if err := p.save(); err != nil {
			r.log.Error("spool: HLS push record not saved", "dir", dir, "err", err)
			return len(segs)
		}
		r.log.Info("spool: HLS recording of a push recovered after a crash", "file_id", p.FileID, "push_id", p.PushID, "segments", p.Segments)
	}
	r.handOnPushEnd(sink, &p)
	return len(segs)
}

// isRecording tells whether a session records into the push folder dir.
func (r *Recorder) isRecording(dir string) bool {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	return r.recording[dir] > 0
}

// removeEmptyHLSDir removes an HLS folder, and the push, stream and app folders, when
// they are empty and no session records into the push.
func (r *Recorder) removeEmptyHLSDir(dir string) {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	push := filepath.Dir(dir)
	if r.recording[push] > 0 || os.Remove(dir) != nil {
		return
	}
	removeEmptyDirs(push, 3)
}

// hlsSegmentPath is where segment seq of a push is, after checking that every name is
// a single path element (they come from a task payload).
func (s Spool) hlsSegmentPath(app, streamID, pushID string, seq int) (string, error) {
	m, err := s.manifestPath(app, streamID, pushID, max(seq, 1), "hls")
	if err != nil {
		return "", err
	}
	if seq < 0 {
		return "", fmt.Errorf("recorder: spool: bad segment number %d", seq)
	}
	return filepath.Join(filepath.Dir(m), hlsDirName, hls.SegmentName(seq)), nil
}

// HLSSegment returns the file of a closed HLS segment; the error wraps ErrNotInSpool
// when the spool does not hold it closed.
func (s Spool) HLSSegment(app, streamID, pushID string, seq int) (SpoolFile, error) {
	path, err := s.hlsSegmentPath(app, streamID, pushID, seq)
	if err != nil {
		return SpoolFile{}, err
	}
	record := filepath.Join(filepath.Dir(path), segRecordName(seq))
	if _, err := os.Stat(record); errors.Is(err, fs.ErrNotExist) {
		return SpoolFile{}, fmt.Errorf("%s/%s/%s hls segment %d: %w", app, streamID, pushID, seq, ErrNotInSpool)
	} else if err != nil {
		return SpoolFile{}, fmt.Errorf("recorder: spool: %w", err)
	}
	return SpoolFile{Name: filepath.Base(path), Path: path}, nil
}

// RemoveHLSSegment deletes a segment, then its record, then the folders that leaves
// empty (not those of a push being recorded). Removing one that is gone is not an error.
func (s Spool) RemoveHLSSegment(app, streamID, pushID string, seq int) error {
	path, err := s.hlsSegmentPath(app, streamID, pushID, seq)
	if err != nil {
		return err
	}
	for _, p := range []string{path, filepath.Join(filepath.Dir(path), segRecordName(seq))} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("recorder: spool: remove HLS segment: %w", err)
		}
	}
	s.r.removeEmptyHLSDir(filepath.Dir(path))
	return nil
}
