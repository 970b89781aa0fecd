package jobs

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// uploadRig is a queue with the uploader registered, on the embedded Redis, a real S3
// and a spool on disk.
func uploadRig(t testing.TB, rc *receiver, poll time.Duration) (*Queue, storage.Store, *diskSpool) {
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
	spool := newDiskSpool(t)
	q.Register(TaskUpload, &Uploader{Store: store, Catalog: testCatalog(t, q, store), Queue: q, Spool: spool,
		PublicURL: "http://vod.example", Log: testLogger(t)})
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	return q, store, spool
}

// testCatalog is the catalog of store indexed in q's Redis.
func testCatalog(t testing.TB, q *Queue, store storage.Store) *catalog.Catalog {
	t.Helper()
	c, err := catalog.New(catalog.Config{Store: store, Redis: q.Redis(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// spoolFragment writes a closed FLV fragment of size bytes in the spool of q's node.
func spoolFragment(t testing.TB, q *Queue, spool *diskSpool, i, size int) Recording {
	t.Helper()
	rec := testRecording(i, "flv")
	spool.add(t, handleOf(q.NodeID(), rec), map[string][]byte{"": make([]byte, size)})
	return rec
}

func TestUploadThenNotify(t *testing.T) {
	rc := newReceiver(t, nil)
	q, store, spool := uploadRig(t, rc, 20*time.Millisecond)
	r := spoolFragment(t, q, spool, 1, 100_000)
	if err := q.EnqueueUpload(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	got := rc.await(t, EventID(EventRecordingReady, r.FileID), 20*time.Second)
	if got.ev.FileSize != 100_000 || got.ev.VideoURL != "http://vod.example/vod/live/s/20270115T080000Z_s_push_0001_flv.flv" {
		t.Errorf("event %+v", got.ev)
	}
	h := handleOf(q.NodeID(), r)
	if spool.has(h) {
		t.Error("spool copy kept after the upload")
	}
	if _, err := os.Stat(spool.manifest(h)); !os.IsNotExist(err) {
		t.Error("spool manifest kept after the upload")
	}
	if _, err := os.Stat(filepath.Join(spool.root, "live")); !os.IsNotExist(err) {
		t.Error("emptied spool folders kept after the upload")
	}
	rec, err := testCatalog(t, q, store).Get(context.Background(), r.FileID)
	if err != nil || rec.Size != 100_000 || len(rec.Objects) != 1 || rec.NodeID != "node-a" || rec.Type != catalog.TypeFragment {
		t.Fatalf("catalog entry %+v, %v", rec, err)
	}
	// The task names the fragment, not where it lies on this node's disk.
	info, err := q.Inspector().GetTaskInfo(NodeQueue("node-a"), "upload:"+r.FileID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(info.Payload), spool.root) || !strings.Contains(string(info.Payload), `"node_id":"node-a"`) {
		t.Errorf("upload payload %s: want a handle naming node-a and no local path", info.Payload)
	}
	// A second run (the task replayed after a crash, once its completed task is gone)
	// finds it stored and sends nothing new.
	if err := q.Inspector().DeleteTask(NodeQueue("node-a"), "upload:"+r.FileID); err != nil {
		t.Fatal(err)
	}
	if err := q.EnqueueUpload(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	r2 := spoolFragment(t, q, spool, 2, 10)
	q.EnqueueUpload(context.Background(), r2)
	rc.await(t, EventID(EventRecordingReady, r2.FileID), 20*time.Second)
	if n := rc.count(EventID(EventRecordingReady, r.FileID)); n != 1 {
		t.Errorf("event sent %d times", n)
	}
}

// A fragment spooled by an older version still holds the push credentials in its
// stream_param: neither the catalog entry nor the callback carries them, and an
// entry stored with them is read without them.
func TestUploadDropsPushCredentials(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	rc := newReceiver(t, nil)
	q, store, spool := uploadRig(t, rc, 20*time.Millisecond)
	rec := spoolFragment(t, q, spool, 1, 1000)
	rec.StreamParam = "foo=bar&record=flv&txSecret=" + secret + "&txTime=5867D600"
	if err := q.EnqueueUpload(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	got := rc.await(t, EventID(EventRecordingReady, rec.FileID), 20*time.Second)
	if got.ev.StreamParam != "foo=bar&record=flv" || strings.Contains(string(got.body), secret) {
		t.Errorf("callback: stream_param %q\n%s", got.ev.StreamParam, got.body)
	}
	ctx := context.Background()
	key := catalog.EntryKey(&rec)
	rc2, _, err := store.Open(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc2)
	rc2.Close()
	if !strings.Contains(string(stored), `"stream_param": "foo=bar\u0026record=flv"`) || strings.Contains(string(stored), secret) {
		t.Errorf("catalog entry:\n%s", stored)
	}

}

// BenchmarkFragmentToCallback measures a closed fragment (5 s of 2.5 Mbit/s, ~1.6 MB)
// handed to the queue until its "recording ready" callback arrives at an httptest
// receiver: upload to S3 on loopback, catalog entry, callback. One fragment at a time,
// so that each finds the workers idle, as fragments closing minutes apart do. With
// the production poll intervals, as "embedded" (one serve on its embedded queue),
// "redis-server/one-node" (one serve on a shared Redis) and "redis-server/cross-node"
// (the recording node, serve --no-worker, uploads; a worker process delivers the
// callback, which it finds by polling). p50/p95 are in milliseconds.
//
//	go test ./jobs -run X -bench FragmentToCallback -benchtime 40x
func BenchmarkFragmentToCallback(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		rc := newReceiver(b, nil)
		q, _, spool := uploadRig(b, rc, DefaultPollInterval)
		benchFragmentToCallback(b, rc, q, spool)
	})
	b.Run("redis-server/one-node", func(b *testing.B) {
		addr, _ := backends[0].start(b)
		rc := newReceiver(b, nil)
		store := benchS3(b)
		q := openDeployed(b, addr, "a", ServeAll, rc.srv.URL)
		spool := newDiskSpool(b)
		registerUploader(b, q, store, spool)
		start(b, q)
		benchFragmentToCallback(b, rc, q, spool)
	})
	b.Run("redis-server/cross-node", func(b *testing.B) {
		addr, _ := backends[0].start(b)
		rc := newReceiver(b, nil)
		store := benchS3(b)
		node := openDeployed(b, addr, "a", ServeNode, rc.srv.URL)
		spool := newDiskSpool(b)
		registerUploader(b, node, store, spool)
		worker := openDeployed(b, addr, "w", ServeShared, rc.srv.URL)
		start(b, node)
		start(b, worker)
		benchFragmentToCallback(b, rc, node, spool)
	})
}

// openDeployed opens (without starting) node nodeID's queue on the Redis at addr,
// with the production defaults.
func openDeployed(b *testing.B, addr, nodeID string, serve Serve, url string) *Queue {
	cfg := DefaultConfig()
	cfg.RedisAddr, cfg.NodeID, cfg.Serve = addr, nodeID, serve
	cfg.CallbackURLs, cfg.CallbackKey = []string{url}, testKey
	q, err := Open(context.Background(), cfg, b.TempDir(), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

// benchS3 is a bucket on a real S3 server for a benchmark.
func benchS3(b *testing.B) storage.Store {
	s3 := s3test.Start(b)
	store, err := storage.NewS3(context.Background(), storage.S3Config{Endpoint: s3.Endpoint, Region: s3.Region,
		Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// benchFragmentToCallback hands q one fragment of its spool at a time and reports the
// time to its callback, p50 and p95 in milliseconds.
func benchFragmentToCallback(b *testing.B, rc *receiver, q *Queue, spool *diskSpool) {
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		r := spoolFragment(b, q, spool, i, 1_600_000)
		start := time.Now()
		if err := q.EnqueueUpload(context.Background(), r); err != nil {
			b.Fatal(err)
		}
		rc.await(b, EventID(EventRecordingReady, r.FileID), 30*time.Second)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
}
