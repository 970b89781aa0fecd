package recorder

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

func readFixture(t testing.TB, name string) []*media.Packet {
	t.Helper()
	return mediatest.ReadFLV(t, filepath.Join("..", "testdata", name))
}

// A new SPS/PPS with other values starts a new fragment, which starts with the new
// configuration and plays on its own.
func TestCodecChangeCutsFragment(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec, err := New(DefaultConfig(), filepath.Join(dir, "spool"), &LocalSink{Dir: out}, log)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{r: rec, dir: t.TempDir(), formats: []string{"flv"}, interval: time.Hour, log: log,
		pub: &stream.Publication{PushID: "p", Params: &stream.PushParams{App: "live", StreamID: "cc"}}}
	first := readFixture(t, "av.flv")
	var last uint32
	for _, p := range first {
		if p.Kind != media.KindData {
			s.handle(p)
			last = max(last, p.Timestamp)
		}
	}
	// The encoder restarts at 720p, its timestamps going on.
	for _, p := range readFixture(t, "video720.flv") {
		if p.Kind == media.KindVideo {
			s.handle(p.WithTimestamp(p.Timestamp + last + 40))
		}
	}
	s.closeFragment("end")
	rec.Wait()
	files, _ := filepath.Glob(filepath.Join(out, "live", "cc", "*.flv"))
	if len(files) != 2 {
		t.Fatalf("fragments %v, want 2", files)
	}
	for i, want := range []int{320, 1280} {
		if _, w, _, _ := mediatest.ProbeFrames(t, files[i]).Stream("video"); w != want {
			t.Errorf("fragment %d: width %d, want %d", i+1, w, want)
		}
	}
}
