package recorder

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livetape/livetape/stream"
)

// Errors of the recording control; the API branches on them.
var (
	ErrNotLive          = errors.New("stream is not live on this node")
	ErrAlreadyRecording = errors.New("stream is already recording")
	ErrNotRecording     = errors.New("stream is not recording")
)

// control keeps the live publications the recorder has seen (so the API can start
// recording one that did not ask for it), their sessions, and the counters metrics read.
type control struct {
	mu   sync.Mutex
	pubs map[string]*pubState // by stream key

	gaps, lost atomic.Int64
	fmtMu      sync.Mutex
	fragments  map[string]int64 // closed fragments by format
	bytes      map[string]int64 // bytes of closed fragments by format
}

// pubState is one live publication as the recorder knows it.
type pubState struct {
	pub     *stream.Publication
	session *session     // the recording, or nil; guarded by control.mu
	lastSeq atomic.Int64 // the push's last fragment number, across stop and start
	// hlsSegments counts the HLS segments the push closed, across stop and start.
	hlsSegments atomic.Int64
}

func (c *control) track(p *stream.Publication) *pubState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pubs == nil {
		c.pubs = make(map[string]*pubState)
	}
	ps := &pubState{pub: p}
	c.pubs[p.Params.Key()] = ps
	return ps
}

func (c *control) untrack(p *stream.Publication) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps := c.pubs[p.Params.Key()]; ps != nil && ps.pub == p {
		delete(c.pubs, p.Params.Key())
	}
}

// setSession makes s the recording of ps, unless one runs.
func (c *control) setSession(ps *pubState, s *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps.session != nil {
		return false
	}
	ps.session = s
	return true
}

func (c *control) sessionEnded(ps *pubState, s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps.session == s {
		ps.session = nil
	}
}

func (c *control) lookup(app, streamID string) *pubState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pubs[app+"/"+streamID]
}

func (c *control) closed(format string, size int64) {
	c.fmtMu.Lock()
	defer c.fmtMu.Unlock()
	if c.fragments == nil {
		c.fragments, c.bytes = make(map[string]int64), make(map[string]int64)
	}
	c.fragments[format]++
	c.bytes[format] += size
}

// Start records the live stream app/streamID in formats, cut every interval, from the
// keyframe the stream's GOP cache starts with (up to one GOP before the call). It fails with ErrNotLive, or ErrAlreadyRecording when the stream
// records already (from its push URL, the configuration or an earlier Start).
func (r *Recorder) Start(app, streamID string, formats []string, interval time.Duration) error {
	if len(formats) == 0 {
		return errors.New("recorder: start: no format")
	}
	for i, f := range formats {
		if !slices.Contains([]string{stream.FormatMP4, stream.FormatHLS, stream.FormatFLV}, f) || slices.Contains(formats[:i], f) {
			return fmt.Errorf("recorder: start: format %q: want mp4, hls or flv, each once", f)
		}
	}
	if interval < time.Second || interval > stream.MaxRecordInterval*time.Second {
		return fmt.Errorf("recorder: start: interval %v: must be in 1s..2h", interval)
	}
	ps := r.ctl.lookup(app, streamID)
	if ps == nil {
		return fmt.Errorf("recorder: start %s/%s: %w", app, streamID, ErrNotLive)
	}
	if err := r.startSession(ps, formats, interval); err != nil {
		return fmt.Errorf("recorder: start %s/%s: %w", app, streamID, err)
	}
	return nil
}

// Stop ends the recording of the live stream app/streamID: the open fragment is
// closed, finalized and handed on as at the end of a push. The push goes on, and Start
// may record it again (its fragments go on being numbered).
func (r *Recorder) Stop(app, streamID string) error {
	ps := r.ctl.lookup(app, streamID)
	if ps == nil {
		return fmt.Errorf("recorder: stop %s/%s: %w", app, streamID, ErrNotLive)
	}
	r.ctl.mu.Lock()
	s := ps.session
	r.ctl.mu.Unlock()
	if s == nil {
		return fmt.Errorf("recorder: stop %s/%s: %w", app, streamID, ErrNotRecording)
	}
	s.log.Info("recording stopped by the API")
	// The session drains what is queued, then closes its fragment and ends; once it
	// has, Start may record again without two sessions numbering fragments at once.
	s.sub.Close()
	<-s.done
	return nil
}

// FormatStatus is the recording state of a live stream in one format.
type FormatStatus struct {
	Format string
	// FileID is the open fragment's file id (as its callback and catalog entry will
	// say), empty between fragments (before the first keyframe).
	FileID string
	// Seconds is the media time of the open fragment so far; Total adds the fragments
	// this recording closed before it.
	Seconds, Total float64
	Interval       time.Duration
}

// Status returns the recording state of the live stream app/streamID per format;
// nil when it does not record (or is not live here).
func (r *Recorder) Status(app, streamID string) []FormatStatus {
	ps := r.ctl.lookup(app, streamID)
	if ps == nil {
		return nil
	}
	r.ctl.mu.Lock()
	s := ps.session
	r.ctl.mu.Unlock()
	if s == nil {
		return nil
	}
	seq := int(s.openSeq.Load())
	open := float64(s.openMS.Load()) / 1000
	closed := float64(s.closedMS.Load()) / 1000
	out := make([]FormatStatus, 0, len(s.formats))
	for _, f := range s.formats {
		st := FormatStatus{Format: f, Seconds: open, Total: closed + open, Interval: s.interval}
		switch {
		case f == stream.FormatHLS:
			bid, _ := broadcastOf(s.pub)
			st.FileID = HLSFileID(bid) // one recording per broadcast
		case seq > 0:
			st.FileID = fileID(s.pub, seq, f)
		}
		out = append(out, st)
	}
	return out
}

// Counters are the recorder's totals since the process started, for metrics.
type Counters struct {
	// Fragments and Bytes count the fragments closed and handed on, by format (HLS:
	// its segments).
	Fragments, Bytes map[string]int64
	// Gaps counts recordings cut because the recorder fell behind and lost packets;
	// Lost counts fragments (one per format) abandoned because their writer failed.
	Gaps, Lost int64
}

// Counters returns the recorder's totals.
func (r *Recorder) Counters() Counters {
	c := &r.ctl
	c.fmtMu.Lock()
	defer c.fmtMu.Unlock()
	out := Counters{Fragments: map[string]int64{}, Bytes: map[string]int64{}, Gaps: c.gaps.Load(), Lost: c.lost.Load()}
	for _, f := range []string{stream.FormatMP4, stream.FormatHLS, stream.FormatFLV} {
		out.Fragments[f], out.Bytes[f] = c.fragments[f], c.bytes[f]
	}
	return out
}
