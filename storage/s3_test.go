package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/storage"
)

func s3Config(srv *s3test.Server) storage.S3Config {
	return storage.S3Config{
		Endpoint:  srv.Endpoint,
		Region:    srv.Region,
		Bucket:    srv.Bucket,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		PathStyle: true,
	}
}

func TestNewS3Config(t *testing.T) {
	for name, c := range map[string]storage.S3Config{
		"no bucket":      {Endpoint: "http://127.0.0.1:1"},
		"half keys":      {Bucket: "b", AccessKey: "a"},
		"small parts":    {Bucket: "b", PartSize: 1 << 20},
		"negative conc.": {Bucket: "b", Concurrency: -1},
	} {
		if _, err := storage.NewS3(t.Context(), c); err == nil {
			t.Errorf("%s: NewS3 succeeded", name)
		}
	}
	s, err := storage.NewS3(t.Context(), storage.S3Config{Endpoint: "minio:9000", Bucket: "b", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := *s.Client.Options().BaseEndpoint; got != "https://minio:9000" {
		t.Errorf("endpoint without scheme became %q, want https://minio:9000", got)
	}
}

func TestEnsureBucket(t *testing.T) {
	srv := s3test.Start(t)
	c := s3Config(srv)
	s, err := storage.NewS3(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(t.Context()); err != nil {
		t.Fatalf("existing bucket: %v", err)
	}

	c.Bucket = srv.Bucket + "-new"
	s, err = storage.NewS3(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	newBucket := c.Bucket
	t.Cleanup(func() { // s3test removes only the bucket it made
		ctx := context.Background()
		srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &newBucket, Key: aws.String("x")})
		srv.Client().DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &newBucket})
	})
	for range 2 {
		if err := s.EnsureBucket(t.Context()); err != nil {
			t.Fatalf("new bucket: %v", err)
		}
	}
	put(t, s, "x", []byte("x"), "")

	c.SecretKey = "wrong"
	s, err = storage.NewS3(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(t.Context()); err == nil {
		t.Fatal("EnsureBucket with a wrong secret succeeded")
	}
}

// TestS3Outage: while the server is down Put fails with an error that is neither an
// integrity error nor ErrNotFound (the upload job retries it), and leaves nothing; once
// the server is back the same store works again.
func TestS3Outage(t *testing.T) {
	srv := s3test.Start(t)
	s, err := storage.NewS3(t.Context(), s3Config(srv))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err = s.Put(ctx, "x", bytes.NewReader([]byte("data")), 4, "")
	var ie *storage.IntegrityError
	if err == nil || errors.As(err, &ie) || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Put while the server is down: %v", err)
	}
	t.Logf("error: %v", err)
	srv.Restart()
	put(t, s, "x", []byte("data"), "")
}

// TestPresignExpiry: a presigned URL stops working after its ttl.
func TestPresignExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the URL to expire")
	}
	srv := s3test.Start(t)
	s, err := storage.NewS3(t.Context(), s3Config(srv))
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "x", []byte("data"), "")
	url, err := s.PresignGet(t.Context(), "x", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Its 1 s lapses (S3 counts whole seconds): the GET is then refused.
	var resp int
	mediatest.WaitFor(t, "the presigned URL to expire", 15*time.Second, func() bool {
		var err error
		resp, err = httpGet(t, url)
		if err != nil {
			t.Fatal(err)
		}
		return resp == 403
	})
}

// BenchmarkS3Upload uploads a file of LIVETAPE_BENCH_UPLOAD_MB MB (default 256) to
// versitygw on loopback with PutFile, as the upload job does with a recording.
// LIVETAPE_BENCH_PART_MB and LIVETAPE_BENCH_CONCURRENCY override the store's defaults,
// for tuning. Run: go test -run '^$' -bench S3Upload -benchtime 3x ./storage
func BenchmarkS3Upload(b *testing.B) {
	mb := envInt(b, "LIVETAPE_BENCH_UPLOAD_MB", 256)
	srv := s3test.Start(b)
	c := s3Config(srv)
	c.PartSize = int64(envInt(b, "LIVETAPE_BENCH_PART_MB", 0)) << 20
	c.Concurrency = envInt(b, "LIVETAPE_BENCH_CONCURRENCY", 0)
	s, err := storage.NewS3(b.Context(), c)
	if err != nil {
		b.Fatal(err)
	}
	size := mb << 20
	path := b.TempDir() + "/recording.mp4"
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := randomBytes(16<<20, 1)
	for n := 0; n < size; n += len(chunk) {
		if _, err := f.Write(chunk[:min(len(chunk), size-n)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		obj, err := storage.PutFile(b.Context(), s, "bench/recording.mp4", path, "video/mp4")
		if err != nil {
			b.Fatal(err)
		}
		if obj.Size != int64(size) {
			b.Fatalf("stored %d bytes, want %d", obj.Size, size)
		}
	}
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}
