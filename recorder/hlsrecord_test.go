package recorder

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// refusingSink takes nothing: what the recorder closes stays in the spool, as when the
// process dies before the job queue took it.
type refusingSink struct{}

func (refusingSink) FragmentClosed(*Manifest) error     { return errors.New("down") }
func (refusingSink) HLSSegmentClosed(*HLSSegment) error { return errors.New("down") }
func (refusingSink) HLSPushEnded(*HLSPush) error        { return errors.New("down") }

// A push killed while recording HLS: the segments it closed (and nobody took) are handed
// on at the next start, the push ends with them, and the segment being written is
// dropped. Nothing closed is lost.
func TestRecoverHLSSegmentsAfterCrash(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec, err := New(DefaultConfig(), spool, refusingSink{}, log)
	if err != nil {
		t.Fatal(err)
	}
	pushDir := filepath.Join(spool, "live", "k", "20260101T000000Z-abcd")
	os.MkdirAll(pushDir, 0o755)
	s := &session{r: rec, dir: pushDir, formats: []string{"hls"}, interval: time.Hour, log: log,
		pub: &stream.Publication{PushID: "20260101T000000Z-abcd", BroadcastID: "k_b1", BroadcastPush: 1,
			Params: &stream.PushParams{App: "live", StreamID: "k"}}}
	if err := s.startHLS(refusingSink{}); err != nil {
		t.Fatal(err)
	}
	// 10 s of the fixture, a keyframe every second: segments [0,4) and [4,8) close, the
	// one from 8 s is being written when the process dies.
	fixture := readFixture(t, "av.flv")
	var loop uint32
	for _, p := range fixture {
		if p.Kind == media.KindVideo && !p.SequenceHeader {
			loop = p.Timestamp + 40
		}
	}
	for offset := uint32(0); offset < 10000; offset += loop {
		for _, p := range fixture {
			if p.Kind == media.KindData || (offset > 0 && p.SequenceHeader) || p.Timestamp >= loop || p.Timestamp+offset >= 10000 {
				continue
			}
			if err := s.handle(p.WithTimestamp(p.Timestamp + offset)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.hls.seg.Flush()
	hlsDir := filepath.Join(pushDir, hlsDirName)
	if segs, _ := filepath.Glob(filepath.Join(hlsDir, "seg-*.ts")); len(segs) != 3 {
		t.Fatalf("spool holds %v, want 2 closed segments and one being written", segs)
	}
	// kill -9: nothing more happens to the spool.

	out := filepath.Join(dir, "out")
	rec2, err := New(DefaultConfig(), spool, &LocalSink{Dir: out, Log: log}, log)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rec2.Recover(); n != 2 || err != nil {
		t.Fatalf("Recover: %d, %v; want the 2 closed segments", n, err)
	}
	pl := filepath.Join(out, "live", "k", HLSFileID("k_b1"), hlsPlaylist)
	b, err := os.ReadFile(pl)
	if err != nil {
		t.Fatalf("no playlist after the recovery: %v", err)
	}
	if strings.Count(string(b), "#EXTINF:") != 2 {
		t.Errorf("playlist:\n%s", b)
	}
	pr := mediatest.ProbeFrames(t, pl)
	if d := pr.Duration(); d < 8-0.05 || d > 8+0.05 {
		t.Errorf("recovered %.3f s, want the 8 s of the closed segments", d)
	}
	if vc, _, _, n := pr.Stream("video"); vc != "h264" || n != 200 {
		t.Errorf("video %s, %d frames, want 200", vc, n)
	}
	var p HLSPush
	if err := loadJSON(filepath.Join(out, "live", "k", HLSFileID("k_b1")+".json"), &p); err != nil || !p.Ended || !p.Recovered || p.Segments != 2 {
		t.Errorf("push end %+v, %v", p, err)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Errorf("spool not emptied: %v", left)
	}
}
