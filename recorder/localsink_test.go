package recorder

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/livetape/livetape/packager/hls"
)

// LocalSink moves closed fragments out of the spool into a recordings folder:
//
//	DIR/{app}/{stream_id}/{file_id}.{mp4|flv}   and {file_id}.json beside it
//	DIR/{app}/{stream_id}/{file_id}/index.m3u8  for HLS
//
// File ids hold the stream id, the push id (which starts with the push's start time)
// and the fragment's number, so the names sort in recording order.
//
// The recorder's tests use it where serve hands fragments to the job queue.
type LocalSink struct {
	Dir string
	Log *slog.Logger

	mu    sync.Mutex
	calls []string // "start PUSH", "fragment FILE_ID", "done PUSH", in order
}

// RecordingStarted and RecordingDone note the calls (PushSink).
func (s *LocalSink) RecordingStarted(m PushRecording) error { s.note("start " + m.PushID); return nil }
func (s *LocalSink) RecordingDone(m PushRecording) error    { s.note("done " + m.PushID); return nil }

func (s *LocalSink) note(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
}

// Calls are the calls the sink got so far.
func (s *LocalSink) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// FragmentClosed moves m's file (or HLS folder) and manifest into the recordings folder.
func (s *LocalSink) FragmentClosed(m *Manifest) error {
	s.note("fragment " + m.FileID)
	dstDir := filepath.Join(s.Dir, m.App, m.StreamID)
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return err
	}
	stem := m.FileID
	src := m.File()
	var dst, rel string
	if m.Format == "hls" {
		// Move the whole folder; the playlist keeps its name inside.
		src = filepath.Dir(src)
		dst = filepath.Join(dstDir, stem)
		rel = filepath.Join(stem, hlsPlaylist)
	} else {
		dst = filepath.Join(dstDir, stem+filepath.Ext(m.Path))
		rel = filepath.Base(dst)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("recorder: move %s: %w", src, err)
	}
	spooled := *m
	m.dir, m.Path, m.State = dstDir, rel, StateHandedOn
	if err := m.saveAs(filepath.Join(dstDir, stem+".json")); err != nil {
		return err
	}
	spooled.remove()
	removeEmptyDirs(spooled.dir, 3)
	if s.Log != nil {
		s.Log.Info("recording ready", "file", filepath.Join(dstDir, rel), "format", m.Format,
			"duration", m.Duration, "size", m.Size, "recovered", m.Recovered)
	}
	return nil
}

// HLSSegmentClosed moves a segment and its record into DIR/{app}/{stream_id}/{file_id}/,
// named by push and number as the bucket names them.
func (s *LocalSink) HLSSegmentClosed(seg *HLSSegment) error {
	dst := filepath.Join(s.Dir, seg.App, seg.StreamID, seg.FileID)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("p%d-seg-%d", seg.BroadcastPush, seg.Seq)
	if err := os.Rename(filepath.Join(seg.dir, hls.SegmentName(seg.Seq)), filepath.Join(dst, name+".ts")); err != nil {
		return fmt.Errorf("recorder: move segment: %w", err)
	}
	if err := saveJSON(filepath.Join(dst, name+".json"), seg); err != nil {
		return err
	}
	return os.Remove(filepath.Join(seg.dir, segRecordName(seg.Seq)))
}

// HLSPushEnded writes DIR/{app}/{stream_id}/{file_id}/index.m3u8, a VOD playlist of every
// segment moved so far (the pushes in order, joined by discontinuities), and the push
// record as {file_id}.json beside the folder.
func (s *LocalSink) HLSPushEnded(p *HLSPush) error {
	dir := filepath.Join(s.Dir, p.App, p.StreamID, p.FileID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	records, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var segs []HLSSegment
	for _, r := range records {
		var seg HLSSegment
		if err := loadJSON(r, &seg); err != nil {
			return err
		}
		segs = append(segs, seg)
	}
	slices.SortFunc(segs, func(a, b HLSSegment) int {
		return cmp.Or(a.BroadcastPush-b.BroadcastPush, a.Seq-b.Seq)
	})
	var total float64
	for _, seg := range segs {
		total += seg.Duration
	}
	if total < minFragment.Seconds() { // as the finalize job: no recording under 1 s
		os.RemoveAll(dir)
		removeEmptyDirs(filepath.Dir(dir), 2)
		return nil
	}
	pl := hls.Playlist{VOD: true}
	for i, seg := range segs {
		pl.Entries = append(pl.Entries, hls.PlaylistEntry{Seq: i, URI: fmt.Sprintf("p%d-seg-%d.ts", seg.BroadcastPush, seg.Seq),
			Duration: seg.Duration, Discontinuity: seg.Discontinuity || (i > 0 && segs[i-1].BroadcastPush != seg.BroadcastPush)})
	}
	if err := os.WriteFile(filepath.Join(dir, hlsPlaylist), pl.AppendTo(nil), 0o644); err != nil {
		return err
	}
	if s.Log != nil {
		s.Log.Info("HLS recording ready", "file", filepath.Join(dir, hlsPlaylist), "segments", len(segs))
	}
	return saveJSON(filepath.Join(s.Dir, p.App, p.StreamID, p.FileID+".json"), p)
}
