package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Spool gives closed fragments to whoever takes them over (the upload job), by name
// rather than by path: the recorder owns the layout, the manifests and the cleanup, and
// nothing outside this package assembles a spool path.
type Spool struct{ r *Recorder }

// Spool returns the recorder's spool.
func (r *Recorder) Spool() Spool { return Spool{r} }

// SpoolFile is one file of a closed fragment.
type SpoolFile struct {
	// Name is the file's name within the fragment: "0001.mp4", or for HLS
	// "index.m3u8" and its segments.
	Name string
	// Path is where it is on this node's disk.
	Path string
}

// ErrNotInSpool: the spool does not hold that closed fragment (any more).
var ErrNotInSpool = errors.New("recorder: fragment not in the spool")

// manifestPath is where the manifest of a fragment is, after checking that every name
// is a single path element (the names come from a task payload).
func (s Spool) manifestPath(app, streamID, pushID string, seq int, format string) (string, error) {
	for _, p := range []string{app, streamID, pushID} {
		if p == "" || !filepath.IsLocal(p) || strings.ContainsAny(p, `/\`) {
			return "", fmt.Errorf("recorder: spool: bad name %.40q", p)
		}
	}
	switch format {
	case "mp4", "flv", "hls":
	default:
		return "", fmt.Errorf("recorder: spool: bad format %.10q", format)
	}
	if seq < 1 {
		return "", fmt.Errorf("recorder: spool: bad sequence number %d", seq)
	}
	m := Manifest{Seq: seq, Format: format}
	return filepath.Join(s.r.spool, app, streamID, pushID, m.name()), nil
}

// load reads the manifest of a closed fragment; the error wraps ErrNotInSpool when
// there is none, or when the fragment is still being recorded or finalized.
func (s Spool) load(app, streamID, pushID string, seq int, format string) (*Manifest, error) {
	path, err := s.manifestPath(app, streamID, pushID, seq, format)
	if err != nil {
		return nil, err
	}
	m, err := LoadManifest(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s/%s/%s %04d.%s: %w", app, streamID, pushID, seq, format, ErrNotInSpool)
	}
	if err != nil {
		return nil, err
	}
	if m.State != StateClosed {
		return nil, fmt.Errorf("%s: state %q: %w", m.FileID, m.State, ErrNotInSpool)
	}
	return m, nil
}

// Fragment returns the files of a closed fragment: its one file, or an HLS fragment's
// playlist and segments. The error wraps ErrNotInSpool when the spool does not hold it
// closed.
func (s Spool) Fragment(app, streamID, pushID string, seq int, format string) ([]SpoolFile, error) {
	m, err := s.load(app, streamID, pushID, seq, format)
	if err != nil {
		return nil, err
	}
	if format != "hls" {
		return []SpoolFile{{Name: filepath.Base(m.File()), Path: m.File()}}, nil
	}
	dir := filepath.Dir(m.File())
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recorder: spool: %w", err)
	}
	var files []SpoolFile
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, SpoolFile{Name: e.Name(), Path: filepath.Join(dir, e.Name())})
		}
	}
	return files, nil
}

// Remove deletes a closed fragment's files, then its manifest (so that a crash half-way
// leaves a manifest the next Remove finds), then the push, stream and app folders it
// leaves empty, except the folder of a push being recorded. Removing a fragment that is
// not in the spool is not an error.
func (s Spool) Remove(app, streamID, pushID string, seq int, format string) error {
	m, err := s.load(app, streamID, pushID, seq, format)
	if errors.Is(err, ErrNotInSpool) {
		return nil
	}
	if err != nil {
		return err
	}
	data := m.File()
	if format == "hls" {
		data = filepath.Dir(data)
	}
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("recorder: spool: remove %s: %w", m.FileID, err)
	}
	if err := m.remove(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recorder: spool: remove %s: %w", m.FileID, err)
	}
	s.r.removeEmptyPushDir(m.dir)
	return nil
}

// removeEmptyPushDir removes a push folder, then its stream and app folders, while
// they are empty and no session records into them. Under dirMu, so that a push
// starting meanwhile does not lose the folder it just made.
func (r *Recorder) removeEmptyPushDir(dir string) {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	if r.recording[dir] > 0 {
		return
	}
	removeEmptyDirs(dir, 3)
}

// makePushDir makes the folder of a push that starts recording and marks it in use
// until the returned release is called.
func (r *Recorder) makePushDir(dir string) (release func(), err error) {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if r.recording == nil {
		r.recording = map[string]int{}
	}
	r.recording[dir]++
	return func() {
		r.dirMu.Lock()
		defer r.dirMu.Unlock()
		if r.recording[dir]--; r.recording[dir] <= 0 {
			delete(r.recording, dir)
			// A push that recorded nothing (or only fragments shorter than 1 s)
			// leaves an empty folder; fragments being finalized keep it, and HLS
			// segments not uploaded yet.
			os.Remove(filepath.Join(dir, hlsDirName))
			removeEmptyDirs(dir, 3)
		}
	}, nil
}

// removeEmptyDirs removes dir and up to levels-1 of its parents while they are empty.
func removeEmptyDirs(dir string, levels int) {
	for range levels {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// isManifest tells manifest files from temporary ones.
func isManifest(name string) bool {
	return strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".tmp")
}
