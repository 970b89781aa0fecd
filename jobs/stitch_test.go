package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/mp4test"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/internal/transcodertest"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/transcoder/runner"
)

// stitchRig is a queue on the embedded Redis with the stitcher registered, a real S3,
// its catalog, and a callback receiver.
type stitchRig struct {
	q     *Queue
	store storage.Store
	cat   *catalog.Catalog
	rc    *receiver
	t0    time.Time
}

// Its stitcher has no transcoder: stitches of recordings that match need none.
func newStitchRig(t *testing.T) *stitchRig { return newStitchRigWith(t, runner.Runner{}) }

// newStitchRigWith is newStitchRig with the stitcher's transcoder.
func newStitchRigWith(t *testing.T, tc runner.Runner) *stitchRig {
	t.Helper()
	s3 := s3test.Start(t)
	store, err := storage.NewS3(t.Context(), storage.S3Config{Endpoint: s3.Endpoint, Region: s3.Region,
		Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, testConfig("", rc.srv.URL), t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	cat := testCatalog(t, q, store)
	if _, err := cat.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	q.Register(TaskStitch, &Stitcher{Store: store, Catalog: cat, Queue: q, PublicURL: "http://vod.example", Log: testLogger(t),
		Transcoder: tc, WorkDir: t.TempDir()})
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	return &stitchRig{q: q, store: store, cat: cat, rc: rc, t0: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
}

// put stores an MP4 as the uploader does: media, then catalog entry.
func (r *stitchRig) put(t *testing.T, stream string, seq int, start time.Time, mp4 []byte, broadcast string) *catalog.Recording {
	t.Helper()
	rec := &catalog.Recording{FileID: fmt.Sprintf("%s_p_%04d_mp4", stream, seq), App: "live", StreamID: stream,
		PushID: "p", Seq: seq, Format: "mp4", StartTime: start, EndTime: start.Add(8 * time.Second), Duration: 8,
		Size: int64(len(mp4)), StoredAt: start.Add(10 * time.Second), BroadcastID: broadcast}
	rec.Key = rec.KeyStem("") + ".mp4"
	rec.Objects = []string{rec.Key}
	if _, err := r.store.Put(t.Context(), rec.Key, bytes.NewReader(mp4), int64(len(mp4)), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	if err := r.cat.Put(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// fetch downloads a stored object to a file.
func (r *stitchRig) fetch(t *testing.T, key string) string {
	t.Helper()
	rc, _, err := r.store.Open(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), filepath.Base(key))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// stitch resolves and queues req, and waits for its event 300.
func (r *stitchRig) stitch(t *testing.T, req StitchRequest) (StitchPayload, Event) {
	t.Helper()
	p, err := ResolveStitch(t.Context(), r.cat, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.q.EnqueueStitch(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	id := EventID(EventStitchDone, p.OutputFileID("cam"))
	var ev Event
	waitFor(t, 30*time.Second, "event 300 of "+p.JobID, func() bool {
		r.rc.mu.Lock()
		defer r.rc.mu.Unlock()
		for _, got := range r.rc.all {
			if got.ev.JobID == p.JobID {
				ev = got.ev
				return true
			}
		}
		return false
	})
	if ev.EventID != id && ev.ErrCode == 0 {
		t.Errorf("event id %s, want %s", ev.EventID, id)
	}
	return p, ev
}

// videoHashes are the hashes of the video packets of an MP4, in decode order.
func videoHashes(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-of", "json", "-show_data_hash", "SHA256",
		"-select_streams", "v", "-show_entries", "packet=data_hash", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct {
		Packets []struct {
			Hash string `json:"data_hash"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	var h []string
	for _, p := range res.Packets {
		h = append(h, p.Hash)
	}
	return h
}

// Three recorded fragments stitched by file id: one MP4 in the bucket, catalogued as a
// clip of its sources, whose video packets are the inputs' byte for byte and whose
// duration is their sum; event 300 says so; the same request again is the same job,
// run once.
func TestStitchJob(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	r := newStitchRig(t)
	mp4 := mp4test.Record(t, filepath.Join("..", "testdata", "av.flv"), 2, 4*time.Second)
	var ids []string
	for i, at := range []time.Duration{0, 8 * time.Second, 20 * time.Second} {
		ids = append(ids, r.put(t, "cam", i+1, r.t0.Add(at), mp4, "").FileID)
	}
	p, ev := r.stitch(t, StitchRequest{FileIDs: ids})
	if ev.ErrCode != 0 || ev.ErrMsg != "ok" || ev.FileFormat != "mp4" || ev.StreamID != "cam" || ev.App != "live" || ev.Stitch != StitchRemux || ev.Template != "" ||
		ev.Duration < 23.9 || ev.Duration > 24.1 || ev.StartTime != r.t0.Unix() || ev.EndTime != r.t0.Add(28*time.Second).Unix() {
		t.Errorf("event 300: %+v", ev)
	}
	out, err := r.cat.Get(t.Context(), ev.FileID)
	if err != nil {
		t.Fatal(err)
	}
	if out.Type != catalog.TypeClip || !slices.Equal(out.SourceFileIDs, ids) || out.Key != ev.VideoID || out.Size != ev.FileSize {
		t.Errorf("catalog entry of the output: %+v", out)
	}
	path := r.fetch(t, out.Key)
	if d := mediatest.Probe(t, path).Duration(); d < 23.9 || d > 24.1 {
		t.Errorf("stitched duration %.3f s, want 24 (3 × 8 s, the gap closed)", d)
	}
	in := videoHashes(t, r.fetch(t, "live/cam/20261121T100000Z_cam_p_0001_mp4.mp4"))
	want := slices.Concat(in, in, in)
	if got := videoHashes(t, path); !slices.Equal(got, want) {
		t.Errorf("stitched video: %d packets, not the inputs' %d byte for byte", len(got), len(want))
	}
	waitFor(t, 10*time.Second, "the job done", func() bool {
		j, err := r.q.Job(p.JobID)
		return err == nil && j.State == JobCompleted && j.Type == "stitch" && j.Progress == 100 &&
			j.Result != nil && len(j.Result.Outputs) == 1 && j.Result.Outputs[0].FileID == ev.FileID && j.Result.Outputs[0].Format == "mp4" &&
			j.Result.Outputs[0].Stitch == StitchRemux
	})

	// The same request: the same job id, refused by the queue as already done.
	again, err := ResolveStitch(t.Context(), r.cat, StitchRequest{FileIDs: ids})
	if err != nil || again.JobID != p.JobID {
		t.Fatalf("same request: job %s (%v), want %s", again.JobID, err, p.JobID)
	}
	if err := r.q.EnqueueStitch(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if j, _ := r.q.Job(p.JobID); j.State != JobCompleted {
		t.Errorf("after posting again: job %s, want still done", j.State)
	}
	if n := r.rc.count(ev.EventID); n != 1 {
		t.Errorf("event 300 sent %d times", n)
	}
}

// A broadcast stitched with its gaps kept, and a time window cut and stored.
func TestStitchBroadcastAndWindow(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	r := newStitchRig(t)
	mp4 := mp4test.Record(t, filepath.Join("..", "testdata", "av.flv"), 2, 4*time.Second)
	r.put(t, "cam", 1, r.t0, mp4, "b1")
	r.put(t, "cam", 2, r.t0.Add(8*time.Second), mp4, "b1")
	r.put(t, "cam", 3, r.t0.Add(20*time.Second), mp4, "b1")
	r.put(t, "cam", 4, r.t0.Add(time.Hour), mp4, "b2")

	_, ev := r.stitch(t, StitchRequest{BroadcastID: "b1", App: "live", StreamID: "cam", Gaps: "keep"})
	if ev.ErrCode != 0 || ev.BroadcastID != "b1" || ev.Duration < 27.9 || ev.Duration > 28.1 {
		t.Errorf("broadcast b1 with its 4 s gap kept: %+v, want 28 s", ev)
	}
	if out, err := r.cat.Get(t.Context(), ev.FileID); err != nil || out.Type != catalog.TypeBroadcast || out.BroadcastID != "b1" || len(out.SourceFileIDs) != 3 {
		t.Errorf("catalog entry %+v (%v), want a broadcast of 3 recordings", out, err)
	}

	from, to := r.t0.Add(5500*time.Millisecond), r.t0.Add(13200*time.Millisecond)
	_, ev = r.stitch(t, StitchRequest{App: "live", StreamID: "cam", From: from, To: to})
	// The clip opens at the keyframe at 5 s: 8.2 s.
	if ev.ErrCode != 0 || ev.Duration < 8.1 || ev.Duration > 8.3 || ev.StartTime != r.t0.Add(5*time.Second).Unix() {
		t.Errorf("window 5.5 s .. 13.2 s: %+v, want 8.2 s from the keyframe at 5 s", ev)
	}
	path := r.fetch(t, ev.VideoID)
	if d := mediatest.Probe(t, path).Duration(); d < 8.1 || d > 8.3 {
		t.Errorf("stored window: %.3f s, want 8.2", d)
	}
}

// Recordings whose codec configurations differ, on a node without livetape-transcoder,
// fail the job at once, with event 300 errcode 1 saying what differs and which setting
// names the transcoder, and the job shows failed.
func TestStitchConfigMismatch(t *testing.T) {
	r := newStitchRig(t)
	a := r.put(t, "cam", 1, r.t0, mp4test.Record(t, filepath.Join("..", "testdata", "av.flv"), 1, 4*time.Second), "")
	b := r.put(t, "cam", 2, r.t0.Add(8*time.Second), mp4test.Record(t, filepath.Join("..", "testdata", "video720.flv"), 1, time.Second), "")
	p, ev := r.stitch(t, StitchRequest{FileIDs: []string{a.FileID, b.FileID}})
	if ev.ErrCode != 1 || !strings.Contains(ev.ErrMsg, "codec configuration") || ev.StreamID != "cam" || strings.Contains(ev.ErrMsg, "skip retry") ||
		!strings.Contains(ev.ErrMsg, "320x240 profile 77 level 13 then avc1 90000 1280x720") ||
		!strings.Contains(ev.ErrMsg, "transcoder not found") || !strings.Contains(ev.ErrMsg, "LIVETAPE_TRANSCODER") {
		t.Errorf("event 300: %+v, want errcode 1 and the reason", ev)
	}
	waitFor(t, 10*time.Second, "the job failed", func() bool {
		j, err := r.q.Job(p.JobID)
		return err == nil && j.State == "failed" && j.Retried == 0 && strings.Contains(j.Error, "codec configuration")
	})
	if _, err := r.cat.Get(t.Context(), p.OutputFileID("cam")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a failed stitch catalogued %v", err)
	}
}

// Recordings of different resolutions (1280x720, 640x360, 1280x720) are transcoded to
// the template of the smallest (sd, 360p) and stitched: one MP4 of one 640x360 video
// stream lasting as long as the inputs together, decoding cleanly; event 300 and the
// job's result say it was a transcode, and to what.
// With the gaps kept, the transcodes are placed as the inputs were.
func TestStitchTranscodesDifferentResolutions(t *testing.T) {
	r := newStitchRigWith(t, runner.Runner{Binary: transcodertest.Binary(t)})
	big, small := mp4test.Synthetic(t, 1280, 720, 2*time.Second), mp4test.Synthetic(t, 640, 360, 3*time.Second)
	var ids []string
	var durations []float64
	var want float64
	for i, mp4 := range [][]byte{big, small, big} {
		rec := r.put(t, "cam", i+1, r.t0.Add(time.Duration(i)*10*time.Second), mp4, "")
		ids = append(ids, rec.FileID)
		durations = append(durations, mediatest.Probe(t, r.fetch(t, rec.Key)).Duration())
		want += durations[i]
	}
	p, ev := r.stitch(t, StitchRequest{FileIDs: ids})
	if ev.ErrCode != 0 || ev.Stitch != StitchTranscode || ev.Template != "sd" || ev.Width != 640 || ev.Height != 360 {
		t.Fatalf("event 300: %+v, want a transcode to sd at 640x360", ev)
	}
	path := r.fetch(t, ev.VideoID)
	probe := mediatest.Probe(t, path)
	if codec, w, h, _ := probe.Stream("video"); codec != "h264" || w != 640 || h != 360 {
		t.Errorf("stitched video %s %dx%d, want h264 640x360", codec, w, h)
	}
	videos := 0
	for _, st := range probe.Streams {
		if st.CodecType == "video" {
			videos++
		}
	}
	if videos != 1 {
		t.Errorf("%d video streams, want 1", videos)
	}
	if d := probe.Duration(); math.Abs(d-want) > 0.1 {
		t.Errorf("stitched duration %.3f s, want the inputs' %.3f ± 0.1", d, want)
	}
	mediatest.DecodeClean(t, path)
	waitFor(t, 10*time.Second, "the job done", func() bool {
		j, err := r.q.Job(p.JobID)
		return err == nil && j.State == JobCompleted && j.Progress == 100 && j.Result != nil && len(j.Result.Outputs) == 1 &&
			j.Result.Outputs[0].Stitch == StitchTranscode && j.Result.Outputs[0].Template == "sd" && j.Result.Outputs[0].Width == 640
	})

	// The gaps kept: the inputs start 10 s apart, so the last one ends at 22 s.
	_, ev = r.stitch(t, StitchRequest{FileIDs: ids, Gaps: "keep"})
	if ev.ErrCode != 0 || ev.Stitch != StitchTranscode {
		t.Fatalf("event 300 with gaps kept: %+v", ev)
	}
	path = r.fetch(t, ev.VideoID)
	if d := mediatest.Probe(t, path).Duration(); math.Abs(d-(20+durations[2])) > 0.1 {
		t.Errorf("stitched with gaps kept: %.3f s, want 20 s and the last input's", d)
	}
	mediatest.DecodeClean(t, path)
}

// Requests that cannot be done are refused before anything is queued.
func TestResolveStitchRefusals(t *testing.T) {
	r := newStitchRig(t)
	mp4 := []byte("not read while resolving")
	a := r.put(t, "cam", 1, r.t0, mp4, "")
	other := r.put(t, "other", 1, r.t0, mp4, "")
	known := &catalog.Broadcast{BroadcastID: "known", App: "live", StreamID: "cam", State: catalog.BroadcastEnded, StartTime: r.t0}
	if err := r.cat.PutBroadcast(t.Context(), known); err != nil {
		t.Fatal(err)
	}
	flv := &catalog.Recording{FileID: "cam_p_0009_flv", App: "live", StreamID: "cam", Format: "flv", StartTime: r.t0, Key: "live/cam/x.flv"}
	if err := r.cat.Put(t.Context(), flv); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  StitchRequest
		want error
		says string
	}{
		{StitchRequest{}, ErrBadStitch, "exactly one of"},
		{StitchRequest{FileIDs: []string{a.FileID}, App: "live", StreamID: "cam", From: r.t0, To: r.t0.Add(time.Hour)}, ErrBadStitch, "exactly one of"},
		{StitchRequest{FileIDs: []string{a.FileID}, Gaps: "sometimes"}, ErrBadStitch, "want keep or close"},
		{StitchRequest{FileIDs: []string{a.FileID, a.FileID}}, ErrBadStitch, "given twice"},
		{StitchRequest{FileIDs: []string{a.FileID, other.FileID}}, ErrBadStitch, "one stream"},
		{StitchRequest{FileIDs: []string{a.FileID, flv.FileID}}, ErrBadStitch, "MP4"},
		{StitchRequest{FileIDs: []string{"nope"}}, storage.ErrNotFound, "nope"},
		{StitchRequest{FileIDs: make([]string, MaxStitchInputs+1)}, ErrBadStitch, "at most 1000"},
		{StitchRequest{BroadcastID: "b1"}, storage.ErrNotFound, "give app and stream_id for one the catalog has no entry of"},
		{StitchRequest{BroadcastID: "known", App: "live", StreamID: "other"}, ErrBadStitch, "is of live/cam"},
		{StitchRequest{BroadcastID: "known", From: r.t0}, ErrBadStitch, "takes no from/to"},
		{StitchRequest{BroadcastID: "b9", App: "live", StreamID: "cam"}, storage.ErrNotFound, "b9"},
		{StitchRequest{App: "live", StreamID: "cam", From: r.t0}, ErrBadStitch, "needs app, stream_id, from and to"},
		{StitchRequest{App: "live", StreamID: "cam", From: r.t0, To: r.t0}, ErrBadStitch, "to must be after from"},
		{StitchRequest{App: "live", StreamID: "cam", From: r.t0, To: r.t0.Add(25 * time.Hour)}, ErrBadStitch, "at most 24h"},
		{StitchRequest{App: "live", StreamID: "cam", From: r.t0.Add(time.Hour), To: r.t0.Add(2 * time.Hour)}, storage.ErrNotFound, "nothing of live/cam"},
	} {
		_, err := ResolveStitch(t.Context(), r.cat, c.req)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %v saying %q", c.req, err, c.want, c.says)
		}
	}
}
