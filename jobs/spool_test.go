package jobs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// diskSpool is a small spool on disk with the recorder's layout
// (root/app/stream/push/NNNN.format, an HLS fragment being a folder of that
// name, and NNNN.format.json beside it), implementing Spool the way the
// recorder will: resolving a handle to files under its own root.
type diskSpool struct {
	root     string
	resolved atomic.Int32 // Fragment calls that found the fragment
}

func newDiskSpool(t testing.TB) *diskSpool { return &diskSpool{root: t.TempDir()} }

func (s *diskSpool) dir(h FragmentHandle) string {
	return filepath.Join(s.root, h.App, h.StreamID, h.PushID)
}

func (s *diskSpool) data(h FragmentHandle) string {
	return filepath.Join(s.dir(h), fmt.Sprintf("%04d.%s", h.Seq, h.Format))
}

func (s *diskSpool) manifest(h FragmentHandle) string { return s.data(h) + ".json" }

// add writes a closed fragment: for HLS, files maps names to contents in
// the fragment's folder; otherwise it has one entry, the file's contents.
func (s *diskSpool) add(t testing.TB, h FragmentHandle, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(s.dir(h), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		p := s.data(h)
		if h.Format == "hls" {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			p = filepath.Join(p, name)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.manifest(h), []byte(`{"state":"closed"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *diskSpool) Fragment(h FragmentHandle) (Fragment, error) {
	p := s.data(h)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Fragment{}, fmt.Errorf("%s: %w", h, ErrFragmentGone)
	}
	if err != nil {
		return Fragment{}, err
	}
	s.resolved.Add(1)
	if !fi.IsDir() {
		return Fragment{Files: []FragmentFile{{Name: filepath.Base(p), Path: p}}}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return Fragment{}, err
	}
	var f Fragment
	for _, e := range entries {
		f.Files = append(f.Files, FragmentFile{Name: e.Name(), Path: filepath.Join(p, e.Name())})
	}
	return f, nil
}

func (s *diskSpool) Remove(h FragmentHandle) error {
	if err := os.RemoveAll(s.data(h)); err != nil {
		return err
	}
	if err := os.Remove(s.manifest(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// The folders of the push and the stream, if that emptied them.
	for d := s.dir(h); d != s.root; d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// has says whether the spool still holds h.
func (s *diskSpool) has(h FragmentHandle) bool {
	_, err := os.Stat(s.data(h))
	return err == nil
}

// testRecording is the catalog entry of fragment i of push "push" of stream s.
func testRecording(i int, format string) Recording {
	return Recording{FileID: fmt.Sprintf("s_push_%04d_%s", i, format), App: "live", StreamID: "s", PushID: "push",
		Seq: i, Format: format, StartTime: time.Unix(1_800_000_000, 0), EndTime: time.Unix(1_800_000_005, 0), Duration: 5}
}

// handleOf is the handle EnqueueUpload on node gives rec.
func handleOf(node string, rec Recording) FragmentHandle {
	return FragmentHandle{NodeID: node, App: rec.App, StreamID: rec.StreamID, PushID: rec.PushID, Seq: rec.Seq, Format: rec.Format}
}
