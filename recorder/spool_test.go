package recorder

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// spoolFragment writes a closed fragment in the recorder's layout, as a session leaves
// it, and returns its manifest.
func spoolFragment(t *testing.T, r *Recorder, push string, seq int, format string) *Manifest {
	t.Helper()
	dir := filepath.Join(r.spool, "live", "cam", push)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{FileID: "cam_" + push + "_" + format, App: "live", StreamID: "cam", PushID: push, Seq: seq,
		Format: format, StartTime: time.Now().UTC(), State: StateClosed, dir: dir}
	switch format {
	case "hls":
		hdir := filepath.Join(dir, "0001.hls")
		os.MkdirAll(hdir, 0o755)
		for _, n := range []string{hlsPlaylist, "seg-0.ts", "seg-1.ts"} {
			os.WriteFile(filepath.Join(hdir, n), []byte(n), 0o644)
		}
		m.Path = filepath.Join("0001.hls", hlsPlaylist)
	default:
		m.Path = "0001." + format
		os.WriteFile(filepath.Join(dir, m.Path), []byte("media"), 0o644)
	}
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	return m
}

func newSpoolRecorder(t *testing.T) *Recorder {
	r, err := New(DefaultConfig(), filepath.Join(t.TempDir(), "spool"), &LocalSink{Dir: t.TempDir()},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The spool resolves a closed fragment by name to its files, and Remove leaves no
// folder behind (it used to leave the push folder).
func TestSpoolFragmentAndRemove(t *testing.T) {
	r := newSpoolRecorder(t)
	sp := r.Spool()
	spoolFragment(t, r, "p1", 1, "flv")
	spoolFragment(t, r, "p1", 1, "hls")

	files, err := sp.Fragment("live", "cam", "p1", 1, "flv")
	if err != nil || len(files) != 1 || files[0].Name != "0001.flv" {
		t.Fatalf("flv fragment: %+v, %v", files, err)
	}
	if b, _ := os.ReadFile(files[0].Path); string(b) != "media" {
		t.Errorf("flv path %s holds %q", files[0].Path, b)
	}
	files, err = sp.Fragment("live", "cam", "p1", 1, "hls")
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{hlsPlaylist, "seg-0.ts", "seg-1.ts"}) {
		t.Fatalf("hls fragment: %v, %v", names, err)
	}

	for _, f := range []string{"flv", "hls"} {
		if err := sp.Remove("live", "cam", "p1", 1, f); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.Fragment("live", "cam", "p1", 1, f); !errors.Is(err, ErrNotInSpool) {
			t.Errorf("%s after Remove: %v, want ErrNotInSpool", f, err)
		}
		if err := sp.Remove("live", "cam", "p1", 1, f); err != nil {
			t.Errorf("second Remove of %s: %v", f, err)
		}
	}
	left, _ := os.ReadDir(r.spool)
	if len(left) != 0 {
		t.Errorf("spool not empty after the last Remove: %v", left)
	}
}

// A fragment still being recorded is not handed out, and names from a task payload
// cannot leave the spool.
func TestSpoolRefuses(t *testing.T) {
	r := newSpoolRecorder(t)
	sp := r.Spool()
	m := spoolFragment(t, r, "p1", 1, "mp4")
	m.State = StateRecording
	m.save()
	if _, err := sp.Fragment("live", "cam", "p1", 1, "mp4"); !errors.Is(err, ErrNotInSpool) {
		t.Errorf("fragment being recorded: %v, want ErrNotInSpool", err)
	}
	if err := sp.Remove("live", "cam", "p1", 1, "mp4"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.File()); err != nil {
		t.Errorf("Remove deleted a fragment being recorded: %v", err)
	}
	for _, bad := range [][3]string{{"..", "cam", "p1"}, {"live", "../..", "p1"}, {"live", "cam", "a/b"}, {"live", "", "p1"}} {
		if _, err := sp.Fragment(bad[0], bad[1], bad[2], 1, "mp4"); err == nil || errors.Is(err, ErrNotInSpool) {
			t.Errorf("Fragment(%q): %v, want a refusal", bad, err)
		}
	}
	if _, err := sp.Fragment("live", "cam", "p1", 1, "exe"); err == nil {
		t.Error("unknown format accepted")
	}
}

// The folder of a push being recorded stays when its last closed fragment is removed:
// the session writes its next fragment there.
func TestSpoolRemoveKeepsLivePushFolder(t *testing.T) {
	r := newSpoolRecorder(t)
	m := spoolFragment(t, r, "p1", 1, "flv")
	release, err := r.makePushDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Spool().Remove("live", "cam", "p1", 1, "flv"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.dir); err != nil {
		t.Fatalf("push folder in use removed: %v", err)
	}
	release()
	if _, err := os.Stat(filepath.Join(r.spool, "live")); !os.IsNotExist(err) {
		t.Errorf("empty folders left once the push ended: %v", err)
	}
}
