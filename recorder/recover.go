package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/livetape/livetape/packager/flv"
	"github.com/livetape/livetape/packager/hls"
)

// Recover finishes what a crash left in the spool: fragments still "recording" are cut
// to their last complete fragment/tag/segment, finalized and handed on; fragments
// "closed" but not handed on are handed on again. It returns how many were handed on.
// Call it before the live server accepts pushes.
func (r *Recorder) Recover() (int, error) {
	manifests, err := r.spooled()
	if err != nil {
		return 0, err
	}
	n := 0
	cut := map[string]*Manifest{} // pushes a crash cut while recording: one manifest each
	defer func() { r.recordingsRecovered(cut) }()
	for _, m := range manifests {
		log := r.log.With("file_id", m.FileID)
		if m.State == StateRecording {
			cut[m.PushID] = m
		}
		switch m.State {
		case StateRecording:
			if !r.finalizeLeft(m) {
				continue
			}
			log.Info("spool: fragment recovered after a crash", "duration", m.Duration, "size", m.Size)
		case StateClosed:
			// A crash right after the manifest said closed can leave the part.
			os.Remove(m.File() + partSuffix)
			log.Info("spool: handing on a fragment closed before the restart")
		default:
			m.remove()
			continue
		}
		r.handOn(m)
		n++
	}
	return n + r.resubmitHLS(), nil
}

// recordingsRecovered tells a PushSink that the pushes a crash cut are done being
// recorded: their last fragments have just been handed on.
func (r *Recorder) recordingsRecovered(cut map[string]*Manifest) {
	ps, ok := r.sink.(PushSink)
	if !ok {
		return
	}
	for _, m := range cut {
		bid := m.BroadcastID
		if bid == "" {
			bid = m.StreamID + "_" + m.PushID // as broadcastOf names a push without one
		}
		if err := ps.RecordingDone(PushRecording{App: m.App, StreamID: m.StreamID, PushID: m.PushID, BroadcastID: bid}); err != nil {
			r.log.Warn("the pipeline was not told that a recovered push is recorded", "push_id", m.PushID, "err", err)
		}
	}
}

// Resubmit hands on again every closed fragment still in the spool. The sink's job
// queue may have lost them (a Redis restarted without persistence); the spool has not,
// and handing on twice is harmless (uploads are idempotent). Fragments whose
// finalizing failed (a full disk) are finalized again first. Fragments being recorded
// are left alone. It returns how many were handed on.
func (r *Recorder) Resubmit() (int, error) {
	manifests, err := r.spooled()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range manifests {
		switch {
		case m.State == StateRecording && !r.isActive(m):
			if !r.finalizeLeft(m) {
				continue
			}
			r.log.Info("spool: fragment finalized on retry", "file_id", m.FileID, "duration", m.Duration, "size", m.Size)
		case m.State != StateClosed:
			continue
		}
		r.handOn(m)
		n++
	}
	return n + r.resubmitHLS(), nil
}

// finalizeLeft finalizes a fragment that no session is writing: cut short by a crash,
// or whose finalizing failed. A storage failure (a full disk) keeps it as it is, to be
// retried; only a fragment that holds nothing playable is removed. It tells whether
// the fragment is now closed.
func (r *Recorder) finalizeLeft(m *Manifest) bool {
	log := r.log.With("file_id", m.FileID)
	err := recoverFragment(m)
	switch {
	case err == nil:
		return true
	case isStorageError(err):
		log.Error("spool: fragment not finalized, kept for the next retry", "err", err)
	default:
		log.Warn("spool: nothing to recover, fragment removed", "reason", err)
		discard(m)
		r.removeEmptyPushDir(m.dir)
	}
	return false
}

// isStorageError tells a failure of the disk (full, read-only, I/O error) from a
// fragment with nothing playable in it.
func isStorageError(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	return errno != syscall.ENOENT
}

// spooled reads every manifest in the spool; unreadable ones are logged and skipped.
func (r *Recorder) spooled() ([]*Manifest, error) {
	var out []*Manifest
	err := filepath.WalkDir(r.spool, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed by an upload meanwhile
			}
			return err
		}
		if d.IsDir() && d.Name() == hlsDirName && filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(path)))) == filepath.Clean(r.spool) {
			return filepath.SkipDir // a push's HLS recording: resubmitHLS
		}
		if d.IsDir() || !isManifest(d.Name()) {
			return nil
		}
		m, err := LoadManifest(path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				r.log.Error("spool: unreadable manifest left alone", "path", path, "err", err)
			}
			return nil
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: scan spool: %w", err)
	}
	return out, nil
}

// recoverFragment finalizes the files of a fragment cut short by a crash.
func recoverFragment(m *Manifest) error {
	base := filepath.Join(m.dir, fmt.Sprintf("%04d", m.Seq))
	// The fragment ended when it was last written to, not when it is finalized.
	last := base + "." + m.Format + partSuffix
	if m.Format == "hls" {
		last = filepath.Join(base+".hls", hlsPlaylist)
	}
	info, err := os.Stat(last)
	if err != nil {
		return err
	}
	var (
		name string
		size int64
		dur  float64
	)
	switch m.Format {
	case "flv":
		st, err := flv.Finalize(base+".flv"+partSuffix, base+".flv", nil)
		if err != nil {
			return err
		}
		name, size, dur = filepath.Base(base+".flv"), st.Size, st.Duration
	case "mp4":
		var err error
		if name, size, dur, err = recoverMP4(base + ".mp4"); err != nil {
			return err
		}
	case "hls":
		var err error
		if size, dur, err = recoverHLS(base + ".hls"); err != nil {
			return err
		}
		name = filepath.Join(filepath.Base(base+".hls"), hlsPlaylist)
	default:
		return fmt.Errorf("unknown format %q", m.Format)
	}
	if dur < minFragment.Seconds() {
		return fmt.Errorf("only %.3f s of media", dur)
	}
	m.Path, m.Size, m.Duration = name, size, dur
	m.EndTime = info.ModTime().UTC()
	m.State, m.Recovered = StateClosed, true
	if err := m.save(); err != nil {
		return err
	}
	os.Remove(m.File() + partSuffix)
	return nil
}

// recoverHLS keeps the segments the playlist lists (each was complete when listed), drops
// the one being written at the crash, and ends the playlist.
func recoverHLS(dir string) (int64, float64, error) {
	f, err := os.Open(filepath.Join(dir, hlsPlaylist))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	entries, err := hls.ParsePlaylist(f)
	if err != nil {
		return 0, 0, err
	}
	var dur float64
	listed := map[string]bool{}
	for _, e := range entries {
		listed[e.URI] = true
		dur += e.Duration
	}
	if len(entries) == 0 {
		return 0, 0, errors.New("no complete HLS segment")
	}
	var size int64
	files, _ := os.ReadDir(dir)
	for _, e := range files {
		switch {
		case listed[e.Name()]:
			if info, err := e.Info(); err == nil {
				size += info.Size()
			}
		case e.Name() != hlsPlaylist:
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if err := writePlaylist(dir, entries, true); err != nil {
		return 0, 0, err
	}
	return size, dur, nil
}

// discard removes a fragment's files and manifest.
func discard(m *Manifest) {
	base := filepath.Join(m.dir, fmt.Sprintf("%04d.%s", m.Seq, m.Format))
	os.Remove(base + partSuffix)
	os.RemoveAll(base)
	m.remove()
}
