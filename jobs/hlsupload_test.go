package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// dirSpool is a spool of segment files in a folder, named by push id and number.
type dirSpool struct{ dir string }

func (s dirSpool) path(h SegmentHandle) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%d.ts", h.PushID, h.Seq))
}

func (s dirSpool) HLSSegment(h SegmentHandle) (string, error) {
	if _, err := os.Stat(s.path(h)); err != nil {
		return "", fmt.Errorf("%s: %w", h, ErrFragmentGone)
	}
	return s.path(h), nil
}

func (s dirSpool) RemoveHLSSegment(h SegmentHandle) error {
	if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Forty segments of two pushes uploaded at once by eight workers: the final playlist
// lists every one, in push and segment order, with a discontinuity where the second
// push starts and where the segmenter said so; the finalize waits until the last is
// stored, and the recording's event 100 is sent once.
func TestHLSConcurrentUploadsFinalize(t *testing.T) {
	redis := redistest.Start(t)
	rc := newReceiver(t, nil)
	cfg := testConfig(redis.URL(), rc.srv.URL)
	cfg.Concurrency = 8
	ctx := context.Background()
	q, err := Open(ctx, cfg, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	store := storage.Local{Dir: t.TempDir()}
	cat, err := catalog.New(catalog.Config{Store: store, Redis: q.Redis(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	spool := dirSpool{t.TempDir()}
	q.Register(TaskHLSSegment, &HLSUploader{Store: store, Queue: q, Spool: spool, Log: testLogger(t)})
	fin := &HLSFinalizer{Store: store, Catalog: cat, Queue: q, PublicURL: "http://vod.test", Log: testLogger(t)}
	q.Register(TaskHLSFinalize, fin)

	const bid, perPush = "cam_b7", 20
	start := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	var segs []HLSSegment
	var total float64
	for push := 1; push <= 2; push++ {
		pushID := fmt.Sprintf("push%d", push)
		for seq := range perPush {
			d := 4 + float64(seq%3)/10
			total += d
			h := SegmentHandle{App: "live", StreamID: "cam", PushID: pushID, Seq: seq}
			if err := os.WriteFile(spool.path(h), []byte(strings.Repeat("t", 188*(seq+1))), 0o644); err != nil {
				t.Fatal(err)
			}
			segs = append(segs, HLSSegment{Segment: h, FileID: bid + "_hls", BroadcastID: bid, BroadcastPush: push,
				Duration: d, Discontinuity: push == 2 && seq == 5, PushStart: start,
				StartTime: start.Add(time.Duration(push*100+seq*4) * time.Second),
				EndTime:   start.Add(time.Duration(push*100+seq*4+4) * time.Second), StreamParam: "record=hls&txSecret=x"})
		}
		if err := q.HLSPushEnded(ctx, HLSPush{FileID: bid + "_hls", App: "live", StreamID: "cam", BroadcastID: bid,
			BroadcastPush: push, PushID: pushID, StartTime: start, Segments: perPush, StreamParam: "record=hls&txSecret=x"}); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing stored yet: the finalize must wait.
	if _, err := fin.Finalize(ctx, bid); !errors.Is(err, errHLSNotComplete) {
		t.Fatalf("Finalize before the uploads: %v, want not complete", err)
	}
	for _, s := range segs {
		if err := q.EnqueueHLSSegment(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.EnqueueHLSFinalize(ctx, bid, ""); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	ev := rc.await(t, EventID(EventRecordingReady, bid+"_hls"), 30*time.Second).ev
	if ev.FileFormat != "hls" || ev.BroadcastID != bid || ev.StreamParam != "record=hls" ||
		ev.Duration < total-0.001 || ev.Duration > total+0.001 || ev.StartTime != start.Add(100*time.Second).Unix() {
		t.Errorf("event %+v, want %.1f s from %v", ev, total, start.Add(100*time.Second))
	}
	rd, _, err := store.Open(ctx, ev.VideoID, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rd)
	rd.Close()
	pl := string(b)
	var want []string
	for push := 1; push <= 2; push++ {
		for seq := range perPush {
			if push == 2 && (seq == 0 || seq == 5) {
				want = append(want, "#EXT-X-DISCONTINUITY")
			}
			want = append(want, fmt.Sprintf("p%d-seg-%d.ts", push, seq))
		}
	}
	var got []string
	for _, l := range strings.Split(pl, "\n") {
		if strings.HasSuffix(l, ".ts") || l == "#EXT-X-DISCONTINUITY" {
			got = append(got, l)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") || !strings.HasSuffix(pl, "#EXT-X-ENDLIST\n") {
		t.Errorf("final playlist:\n%s", pl)
	}
	rec, err := cat.Get(ctx, bid+"_hls")
	if err != nil || len(rec.Objects) != 2*perPush+1 || rec.Size != ev.FileSize || rec.BroadcastID != bid {
		t.Errorf("catalog entry %+v, %v", rec, err)
	}
	// Each uploader removes its segment from the spool after storing and listing it,
	// so the last removals may follow the event.
	waitFor(t, 15*time.Second, "the spool emptied", func() bool {
		left, _ := os.ReadDir(spool.dir)
		return len(left) == 0
	})
	if n := rc.count(ev.EventID); n != 1 {
		t.Errorf("event 100 sent %d times", n)
	}
}

// Broadcast ids name Redis keys and task ids: a hostile one is refused before use.
func TestHLSRefusesBadBroadcastID(t *testing.T) {
	redis := redistest.Start(t)
	q := openQueue(t, testConfig(redis.URL()), t.TempDir())
	ctx := context.Background()
	for _, id := range []string{"", "../x", "a}b", strings.Repeat("a", 201), "a b"} {
		if err := q.EnqueueHLSSegment(ctx, HLSSegment{BroadcastID: id, BroadcastPush: 1}); err == nil {
			t.Errorf("segment of broadcast %q queued", id)
		}
		if err := q.EnqueueHLSFinalize(ctx, id, ""); err == nil {
			t.Errorf("finalize of broadcast %q queued", id)
		}
		if err := q.HLSPushEnded(ctx, HLSPush{BroadcastID: id, BroadcastPush: 1}); err == nil {
			t.Errorf("push end of broadcast %q stored", id)
		}
	}
}
