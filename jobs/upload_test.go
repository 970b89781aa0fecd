package jobs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/storage"
)

// uploadRig is a queue with the uploader registered, on the embedded Redis and a real S3.
func uploadRig(t testing.TB, rc *receiver, poll time.Duration) (*Queue, storage.Store) {
	t.Helper()
	s3 := s3test.Start(t)
	store, err := storage.NewS3(context.Background(), storage.S3Config{Endpoint: s3.Endpoint, Region: s3.Region,
		Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := testConfig("", rc.srv.URL)
	cfg.PollInterval = poll
	q, err := Open(ctx, cfg, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	q.Register(TaskUpload, &Uploader{Store: store, Queue: q, PublicURL: "http://vod.example", Log: testLogger(t)})
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	return q, store
}

// spoolFragment writes a fake closed fragment of size bytes and its spool manifest.
func spoolFragment(t testing.TB, dir string, i, size int) UploadPayload {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%04d.flv", i))
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := path + ".json"
	os.WriteFile(manifest, []byte("{}"), 0o644)
	return UploadPayload{
		Recording: Recording{FileID: fmt.Sprintf("s_push_%04d_flv", i), App: "live", StreamID: "s", Seq: i, Format: "flv",
			StartTime: time.Unix(1_800_000_000, 0), EndTime: time.Unix(1_800_000_005, 0), Duration: 5},
		LocalPath: path, SpoolManifest: manifest,
	}
}

func TestUploadThenNotify(t *testing.T) {
	rc := newReceiver(t, nil)
	q, store := uploadRig(t, rc, 20*time.Millisecond)
	p := spoolFragment(t, t.TempDir(), 1, 100_000)
	if err := q.EnqueueUpload(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	got := rc.await(t, EventID(EventRecordingReady, p.Recording.FileID), 20*time.Second)
	if got.ev.FileSize != 100_000 || got.ev.VideoURL != "http://vod.example/vod/live/s/20270115T080000Z_s_push_0001_flv.flv" {
		t.Errorf("event %+v", got.ev)
	}
	if _, err := os.Stat(p.LocalPath); !os.IsNotExist(err) {
		t.Error("spool copy kept after the upload")
	}
	if _, err := os.Stat(p.SpoolManifest); !os.IsNotExist(err) {
		t.Error("spool manifest kept after the upload")
	}
	rec, err := LoadRecording(context.Background(), store, ManifestKey(&p.Recording))
	if err != nil || rec.Size != 100_000 || len(rec.Objects) != 1 {
		t.Fatalf("catalog entry %+v, %v", rec, err)
	}
	// A second run (the task replayed after a crash) finds it stored and sends nothing new.
	if err := q.EnqueueUpload(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	p2 := spoolFragment(t, t.TempDir(), 2, 10)
	q.EnqueueUpload(context.Background(), p2)
	rc.await(t, EventID(EventRecordingReady, p2.Recording.FileID), 20*time.Second)
	if n := rc.count(EventID(EventRecordingReady, p.Recording.FileID)); n != 1 {
		t.Errorf("event sent %d times", n)
	}
}

// A fragment spooled by an older version still holds the push credentials in its
// stream_param: neither the catalog entry nor the callback carries them, and an
// entry stored with them is read without them.
func TestUploadDropsPushCredentials(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	rc := newReceiver(t, nil)
	q, store := uploadRig(t, rc, 20*time.Millisecond)
	p := spoolFragment(t, t.TempDir(), 1, 1000)
	p.Recording.StreamParam = "foo=bar&record=flv&txSecret=" + secret + "&txTime=5867D600"
	if err := q.EnqueueUpload(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	got := rc.await(t, EventID(EventRecordingReady, p.Recording.FileID), 20*time.Second)
	if got.ev.StreamParam != "foo=bar&record=flv" || strings.Contains(string(got.body), secret) {
		t.Errorf("callback: stream_param %q\n%s", got.ev.StreamParam, got.body)
	}
	ctx := context.Background()
	key := ManifestKey(&p.Recording)
	rc2, _, err := store.Open(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc2)
	rc2.Close()
	if !strings.Contains(string(stored), `"stream_param": "foo=bar\u0026record=flv"`) || strings.Contains(string(stored), secret) {
		t.Errorf("catalog entry:\n%s", stored)
	}

	// An entry an older version stored with the credentials.
	old := bytes.Replace(stored, []byte(`foo=bar\u0026record=flv`), []byte(`foo=bar\u0026record=flv\u0026txSecret=`+secret+`\u0026txTime=5867D600`), 1)
	if !bytes.Contains(old, []byte(secret)) {
		t.Fatalf("test setup: no credentials put back in\n%s", old)
	}
	if _, err := store.Put(ctx, key, bytes.NewReader(old), int64(len(old)), "application/json"); err != nil {
		t.Fatal(err)
	}
	rec, err := LoadRecording(ctx, store, key)
	if err != nil || rec.StreamParam != "foo=bar&record=flv" {
		t.Errorf("old entry read back: %q, %v", rec.StreamParam, err)
	}
}

// BenchmarkFragmentToCallback measures a closed fragment (5 s of 2.5 Mbit/s, ~1.6 MB)
// handed to the queue until its "recording ready" callback arrives: upload to S3 on
// loopback, catalog entry, callback.
func BenchmarkFragmentToCallback(b *testing.B) {
	rc := newReceiver(b, nil)
	q, _ := uploadRig(b, rc, DefaultPollInterval) // as deployed
	dir := b.TempDir()
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		p := spoolFragment(b, dir, i, 1_600_000)
		start := time.Now()
		if err := q.EnqueueUpload(context.Background(), p); err != nil {
			b.Fatal(err)
		}
		rc.await(b, EventID(EventRecordingReady, p.Recording.FileID), 30*time.Second)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
}
