package recorder

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// A crash while a fragment was being finalized (the final file written, the manifest
// still "recording") must not lose it: the part is still there and is finalized again.
func TestRecoverCrashDuringFinalize(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	push := filepath.Join(spool, "live", "s", "20260101T000000Z-abcd")
	os.MkdirAll(push, 0o755)
	fixture, err := os.ReadFile(filepath.Join("..", "testdata", "av.flv"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(push, "0001.flv.part"), fixture, 0o644)
	os.WriteFile(filepath.Join(push, "0001.flv"), fixture[:len(fixture)/2], 0o644) // a half-written final file
	m := &Manifest{FileID: "s_x_0001_flv", App: "live", StreamID: "s", PushID: "20260101T000000Z-abcd", Seq: 1,
		Format: "flv", StartTime: time.Now(), State: StateRecording, dir: push}
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	sink := &LocalSink{Dir: out}
	rec, err := New(DefaultConfig(), spool, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rec.Recover(); n != 1 || err != nil {
		t.Fatalf("Recover: %d, %v", n, err)
	}
	// The push the crash cut is done being recorded once its fragment is handed on.
	if calls := sink.Calls(); !slices.Equal(calls, []string{"fragment s_x_0001_flv", "done 20260101T000000Z-abcd"}) {
		t.Errorf("sink calls %q: want the fragment, then the push done", calls)
	}
	files, _ := filepath.Glob(filepath.Join(out, "live", "s", "*.flv"))
	if len(files) != 1 {
		t.Fatalf("recovered %v", files)
	}
	if d := mediatest.ProbeFrames(t, files[0]).Duration(); d < 3.9 {
		t.Errorf("recovered %.2f s of 4", d)
	}
	if _, err := os.Stat(filepath.Join(push, "0001.flv.part")); !os.IsNotExist(err) {
		t.Error("part left in the spool")
	}
}
