package recorder

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/fmp4"
)

// mp4Writer writes NNNN.mp4.part as fragmented MP4, a fragment at every video keyframe
// and at most every second, each fsynced, so a crash loses at most about a second;
// finish rewrites it as the fast-start NNNN.mp4.
type mp4Writer struct {
	path string
	f    *os.File
	w    *fmp4.Writer
}

func newMP4Writer(path string, h headers) (formatWriter, error) {
	var tracks fmp4.Tracks
	var err error
	if h.video != nil {
		if tracks.Video, err = media.ParseAVCConfig(h.video.Payload()); err != nil {
			return nil, fmt.Errorf("recorder: mp4: %w", err)
		}
	}
	if h.audio != nil {
		if tracks.Audio, err = media.ParseAACConfig(h.audio.Payload()); err != nil {
			return nil, fmt.Errorf("recorder: mp4: %w", err)
		}
	}
	f, err := os.Create(path + partSuffix)
	if err != nil {
		return nil, fmt.Errorf("recorder: mp4: %w", err)
	}
	w, err := fmp4.NewWriter(f, tracks)
	if err != nil {
		f.Close()
		os.Remove(path + partSuffix)
		return nil, fmt.Errorf("recorder: mp4: %w", err)
	}
	return &mp4Writer{path: path, f: f, w: w}, nil
}

func (w *mp4Writer) writePacket(p *media.Packet) error {
	if err := w.w.WritePacket(p); err != nil {
		return err
	}
	// Flush holds back the newest sample, so flushing right after a keyframe ends the
	// fragment before it: each fragment starts on a keyframe.
	if (p.Kind == media.KindVideo && p.Keyframe) || w.w.Pending() >= syncEvery {
		return w.w.Flush()
	}
	return nil
}

// sync makes the fragments written so far durable.
// flushBuffer has nothing to do: the fMP4 writer holds a buffer only while it writes
// a fragment.
func (w *mp4Writer) flushBuffer() error { return nil }

func (w *mp4Writer) sync() error { return w.f.Sync() }

func (w *mp4Writer) finish() (string, int64, error) {
	err := w.w.Close()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("recorder: mp4: %w", err)
	}
	name, size, _, err := finishMP4(w.path)
	return name, size, err
}

func (w *mp4Writer) abort() {
	w.f.Close()
	os.Remove(w.path + partSuffix)
	os.Remove(w.path)
}

// finishMP4 finalizes path+".part" into the fast-start path. The part stays until the
// manifest says closed (see fragment.close).
func finishMP4(path string) (string, int64, float64, error) {
	st, err := fmp4.FinalizeFile(path+partSuffix, path)
	if err != nil {
		return "", 0, 0, fmt.Errorf("recorder: mp4: %w", err)
	}
	return filepath.Base(path), st.Bytes, st.Duration.Seconds(), nil
}

// recoverMP4 cuts a fragmented MP4 left by a crash to its last complete fragment and
// finalizes it.
func recoverMP4(path string) (string, int64, float64, error) {
	f, err := os.OpenFile(path+partSuffix, os.O_RDWR, 0)
	if err != nil {
		return "", 0, 0, err
	}
	_, err = fmp4.Recover(f)
	f.Close()
	if err != nil {
		return "", 0, 0, err
	}
	return finishMP4(path)
}
