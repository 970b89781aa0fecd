//go:build linux

package recorder

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// smallDisk mounts a tmpfs of size bytes: a real file system that really fills up.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk is simulated with a small tmpfs, and mounting one needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs to simulate a full disk: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

// fillDisk writes a file that leaves only free bytes on dir's file system.
func fillDisk(t *testing.T, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	if avail <= free {
		t.Fatalf("only %d bytes free, want more than %d", avail, free)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, zeros{}, avail-free); err != nil {
		t.Fatalf("filling the disk: %v", err)
	}
	return path
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// A fragment whose finalizing fails on a full disk stays in the spool, part and
// manifest, and is finalized and handed on by the next reconcile once space is back.
func TestFullDiskFinalizeRetried(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	disk := smallDisk(t, "1m")
	spool, out := filepath.Join(disk, "spool"), filepath.Join(disk, "out")
	logs := &mediatest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	rec, err := New(DefaultConfig(), spool, &LocalSink{Dir: out}, log)
	if err != nil {
		t.Fatal(err)
	}
	pub := &stream.Publication{PushID: "p1", Params: &stream.PushParams{App: "live", StreamID: "full"}}
	dir := filepath.Join(spool, "live", "full", "p1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &session{r: rec, pub: pub, dir: dir, formats: []string{"flv", "mp4"}, interval: 3600e9, log: log}
	fixture := readFixture(t, "av.flv")
	pictures := 0
	for _, p := range fixture {
		if p.Kind == media.KindVideo && !p.SequenceHeader && p.Body()[1] == 1 {
			pictures++
		}
		if err := s.handle(p); err != nil {
			t.Fatal(err)
		}
	}
	// Reconcile leaves a fragment being recorded alone.
	if n, err := rec.Resubmit(); n != 0 || err != nil {
		t.Fatalf("Resubmit during the recording: %d, %v", n, err)
	}
	// What was recorded is on disk; then the disk fills up, leaving room for the last
	// MP4 fragment but not for a finalized copy of either file.
	for _, o := range s.frag.outs {
		if err := o.w.sync(); err != nil {
			t.Fatal(err)
		}
	}
	filler := fillDisk(t, disk, 80<<10)
	s.closeFragment("push ended")
	rec.Wait()
	parts := func() []string {
		p, _ := filepath.Glob(filepath.Join(dir, "*.part"))
		return p
	}
	// A reconcile while the disk is still full keeps everything.
	if n, err := rec.Resubmit(); n != 0 || err != nil {
		t.Fatalf("Resubmit on a full disk: %d, %v", n, err)
	}
	if p := parts(); len(p) != 2 {
		t.Fatalf("parts %v after a retry on a full disk, want both kept", p)
	}
	if ms, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(ms) != 2 {
		t.Fatalf("manifests %v after a retry on a full disk, want both kept", ms)
	}

	// Space is back: the next reconcile finalizes both and hands them on, whole.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if n, err := rec.Resubmit(); n != 2 || err != nil {
		t.Fatalf("Resubmit with space back: %d, %v", n, err)
	}
	for _, ext := range []string{"*.flv", "*.mp4"} {
		files, _ := filepath.Glob(filepath.Join(out, "live", "full", ext))
		if len(files) != 1 {
			t.Fatalf("%s recordings: %v", ext, files)
		}
		if _, _, _, n := mediatest.ProbeFrames(t, files[0]).Stream("video"); n != pictures {
			t.Errorf("%s: %d video frames, %d pushed", filepath.Base(files[0]), n, pictures)
		}
	}
	if p := parts(); len(p) != 0 {
		t.Errorf("parts left after finalizing: %v", p)
	}
	if n := strings.Count(logs.String(), "fragment not finalized: kept in the spool, retried on reconcile"); n != 2 {
		t.Errorf("the failed finalizing of %d formats logged, want both", n)
	}
}
