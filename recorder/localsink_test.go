package recorder

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
}

// FragmentClosed moves m's file (or HLS folder) and manifest into the recordings folder.
func (s *LocalSink) FragmentClosed(m *Manifest) error {
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
