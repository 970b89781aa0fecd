package storage_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/storage"
)

// testPartSize is the smallest part size S3 allows, so that the multipart path runs
// with objects of a few MiB.
const testPartSize = 5 << 20

// env is one backend under test.
type env struct {
	store storage.Store
	// leftovers lists what a failed Put may have left behind outside the objects:
	// temporary files of Local, pending multipart uploads of S3.
	leftovers func(t *testing.T) []string
}

// backends are the stores every behaviour runs on.
var backends = []struct {
	name string
	new  func(t *testing.T) *env
}{
	{"local", newLocal},
	{"s3", newS3},
}

func newLocal(t *testing.T) *env {
	dir := t.TempDir()
	return &env{store: storage.Local{Dir: dir}, leftovers: newLocalLeftovers(dir)}
}

// newLocalLeftovers finds the temporary files of Local under dir.
func newLocalLeftovers(dir string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		var found []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), ".livetape-tmp") {
				found = append(found, p)
			}
			return nil
		})
		return found
	}
}

func newS3(t *testing.T) *env {
	srv := s3test.Start(t)
	st, err := storage.NewS3(t.Context(), storage.S3Config{
		Endpoint:  srv.Endpoint,
		Region:    srv.Region,
		Bucket:    srv.Bucket,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		PathStyle: true,
		PartSize:  testPartSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		store: st,
		leftovers: func(t *testing.T) []string {
			out, err := srv.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &srv.Bucket})
			if err != nil {
				t.Fatalf("list multipart uploads: %v", err)
			}
			var found []string
			for _, u := range out.Uploads {
				found = append(found, "upload of "+*u.Key)
			}
			return found
		},
	}
}

// behaviours is the contract of Store, run on every backend.
var behaviours = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"PutStatOpen", testPutStatOpen},
	{"Ranges", testRanges},
	{"EmptyObject", testEmptyObject},
	{"Overwrite", testOverwrite},
	{"DefaultContentType", testDefaultContentType},
	{"List", testList},
	{"Delete", testDelete},
	{"NotFound", testNotFound},
	{"InvalidKeys", testInvalidKeys},
	{"SizeMismatch", testSizeMismatch},
	{"SizeMismatchMultipart", testSizeMismatchMultipart},
	{"ReaderError", testReaderError},
	{"PutFileFromOffset", testPutFromFileOffset},
	{"Stream", testStream},
	{"Concurrent", testConcurrent},
	{"LargeFile", testLargeFile},
	{"Presign", testPresign},
}

func TestStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range behaviours {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, b.new(t))
				})
			}
		})
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	b := make([]byte, n)
	r.Read(b)
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, s storage.Store, key string, data []byte, contentType string) storage.Object {
	t.Helper()
	obj, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), contentType)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return obj
}

func readAll(t *testing.T, s storage.Store, key string, offset, length int64) ([]byte, storage.Object) {
	t.Helper()
	rc, obj, err := s.Open(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, obj
}

// checkObject compares what a backend reports with what was put.
func checkObject(t *testing.T, what string, got storage.Object, key string, data []byte, contentType string) {
	t.Helper()
	if got.Key != key || got.Size != int64(len(data)) || got.ETag != md5hex(data) {
		t.Errorf("%s = {Key %q Size %d ETag %q}, want {%q %d %q}", what, got.Key, got.Size, got.ETag, key, len(data), md5hex(data))
	}
	if contentType != "" && got.ContentType != contentType {
		t.Errorf("%s ContentType = %q, want %q", what, got.ContentType, contentType)
	}
	if d := time.Since(got.ModTime); d < -time.Minute || d > time.Minute {
		t.Errorf("%s ModTime = %v, not about now", what, got.ModTime)
	}
}

func testPutStatOpen(t *testing.T, e *env) {
	data := randomBytes(100_000, 1)
	key := "live/stream1/20261121T100000_f1.mp4"
	checkObject(t, "Put", put(t, e.store, key, data, "video/mp4"), key, data, "video/mp4")

	obj, err := e.store.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, "Stat", obj, key, data, "video/mp4")

	got, obj := readAll(t, e.store, key, 0, -1)
	if !bytes.Equal(got, data) {
		t.Fatalf("Open read %d bytes, not what was put", len(got))
	}
	checkObject(t, "Open", obj, key, data, "video/mp4")
}

func testRanges(t *testing.T, e *env) {
	data := randomBytes(1000, 2)
	key := "r.flv"
	put(t, e.store, key, data, "video/x-flv")
	for _, c := range []struct {
		offset, length int64
		want           []byte
	}{
		{0, -1, data},
		{0, 1000, data},
		{10, 100, data[10:110]},
		{990, -1, data[990:]},
		{990, 100, data[990:]}, // cut at the end, as an HTTP range
		{999, 1, data[999:]},
		{0, 1, data[:1]},
		{500, 0, nil},
		{1000, 0, nil},
	} {
		t.Run(fmt.Sprintf("%d+%d", c.offset, c.length), func(t *testing.T) {
			got, obj := readAll(t, e.store, key, c.offset, c.length)
			if !bytes.Equal(got, c.want) {
				t.Errorf("read %d bytes, want %d (content differs: %v)", len(got), len(c.want), len(got) == len(c.want))
			}
			if obj.Size != 1000 || obj.ETag != md5hex(data) {
				t.Errorf("Object = {Size %d ETag %q}, want the whole object's {1000 %q}", obj.Size, obj.ETag, md5hex(data))
			}
		})
	}
	for _, c := range []struct{ offset, length int64 }{{1000, 1}, {1000, -1}, {5000, 10}, {-1, 10}, {0, -2}} {
		t.Run(fmt.Sprintf("invalid %d+%d", c.offset, c.length), func(t *testing.T) {
			rc, _, err := e.store.Open(t.Context(), key, c.offset, c.length)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, storage.ErrInvalidRange) {
				t.Fatalf("Open(%d, %d) error = %v, want ErrInvalidRange", c.offset, c.length, err)
			}
		})
	}
}

func testEmptyObject(t *testing.T, e *env) {
	key := "empty/x.ts"
	checkObject(t, "Put", put(t, e.store, key, nil, "video/mp2t"), key, nil, "video/mp2t")
	obj, err := e.store.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, "Stat", obj, key, nil, "video/mp2t")
	if got, _ := readAll(t, e.store, key, 0, -1); len(got) != 0 {
		t.Fatalf("read %d bytes from an empty object", len(got))
	}
	if got, _ := readAll(t, e.store, key, 0, 0); len(got) != 0 {
		t.Fatalf("read %d bytes from an empty object", len(got))
	}
	if _, _, err := e.store.Open(t.Context(), key, 0, 1); !errors.Is(err, storage.ErrInvalidRange) {
		t.Fatalf("Open(0, 1) of an empty object: %v, want ErrInvalidRange", err)
	}
}

func testOverwrite(t *testing.T, e *env) {
	key := "a/b/c.m3u8"
	put(t, e.store, key, []byte("#EXTM3U\n"), "application/vnd.apple.mpegurl")
	data := []byte("#EXTM3U\n#EXT-X-ENDLIST\n")
	put(t, e.store, key, data, "application/vnd.apple.mpegurl")
	obj, err := e.store.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, "Stat", obj, key, data, "application/vnd.apple.mpegurl")
	if got, _ := readAll(t, e.store, key, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("read %q after overwrite", got)
	}
}

func testDefaultContentType(t *testing.T, e *env) {
	for key, want := range map[string]string{
		"x.flv":  "video/x-flv",
		"x.mp4":  "video/mp4",
		"x.m3u8": "application/vnd.apple.mpegurl",
		"x.ts":   "video/mp2t",
		"x.json": "application/json",
		"x":      "application/octet-stream",
	} {
		put(t, e.store, key, []byte("data"), "")
		obj, err := e.store.Stat(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if obj.ContentType != want {
			t.Errorf("%s: ContentType %q, want %q", key, obj.ContentType, want)
		}
	}
}

func testList(t *testing.T, e *env) {
	keys := []string{"live/a/2.flv", "live/a/1.flv", "live/b/1.flv", "live/a.flv", "other/x", "live/ab", "top"}
	data := map[string][]byte{}
	for i, k := range keys {
		data[k] = randomBytes(10+i, uint64(i))
		put(t, e.store, k, data[k], "")
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"live/a.flv", "live/a/1.flv", "live/a/2.flv", "live/ab", "live/b/1.flv", "other/x", "top"}},
		{"live/a", []string{"live/a.flv", "live/a/1.flv", "live/a/2.flv", "live/ab"}},
		{"live/a/", []string{"live/a/1.flv", "live/a/2.flv"}},
		{"live/a/1", []string{"live/a/1.flv"}},
		{"live/b/1.flv", []string{"live/b/1.flv"}},
		{"t", []string{"top"}},
		{"nope/", nil},
		{"live/c/d/", nil},
		{"top/", nil},
	} {
		t.Run(c.prefix, func(t *testing.T) {
			objs, err := e.store.List(t.Context(), c.prefix)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Key)
				if o.Size != int64(len(data[o.Key])) || o.ETag != md5hex(data[o.Key]) {
					t.Errorf("%s: Size %d ETag %q, want %d %q", o.Key, o.Size, o.ETag, len(data[o.Key]), md5hex(data[o.Key]))
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
			}
		})
	}
	if _, err := e.store.List(t.Context(), "../"); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("List(../): %v, want ErrInvalidKey", err)
	}
}

func testDelete(t *testing.T, e *env) {
	ctx := t.Context()
	put(t, e.store, "d/1/x.flv", []byte("one"), "")
	put(t, e.store, "d/2.flv", []byte("two"), "")
	if err := e.store.Delete(ctx, "d/1/x.flv"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Stat(ctx, "d/1/x.flv"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
	}
	// Deleting again (a retried job) is not an error.
	if err := e.store.Delete(ctx, "d/1/x.flv"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := e.store.Delete(ctx, "never/was"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	// "d" is a folder of keys on disk, not an object: deleting it deletes nothing.
	if err := e.store.Delete(ctx, "d"); err != nil {
		t.Fatalf("Delete(d): %v", err)
	}
	objs, err := e.store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "d/2.flv" {
		t.Fatalf("List after Delete = %v, want only d/2.flv", objs)
	}
	// The key can be used again, also as a folder.
	put(t, e.store, "d/1", []byte("now a file"), "")
}

func testNotFound(t *testing.T, e *env) {
	ctx := t.Context()
	put(t, e.store, "present/x", []byte("x"), "")
	for _, key := range []string{"missing", "present/y", "present/x/below", "present"} {
		if _, err := e.store.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q): %v, want ErrNotFound", key, err)
		}
		rc, _, err := e.store.Open(ctx, key, 0, -1)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(%q): %v, want ErrNotFound", key, err)
		}
		if rc, _, err := e.store.Open(ctx, key, 5, 10); !errors.Is(err, storage.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Open(%q, 5, 10): %v, want ErrNotFound", key, err)
		}
		if _, _, err := e.store.Open(ctx, key, 0, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(%q, 0, 0): %v, want ErrNotFound", key, err)
		}
	}
}

var invalidKeys = []string{
	"", "/abs", "a/../b", "..", "../x", "a/..", ".", "./a", "a/./b", "a//b", "a/", "a\x00b",
	"x.livetape-meta", "a/.livetape-tmp-1", "\xff\xfe", strings.Repeat("k", 1025),
}

func testInvalidKeys(t *testing.T, e *env) {
	ctx := t.Context()
	for _, key := range invalidKeys {
		if err := storage.ValidateKey(key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := e.store.Put(ctx, key, strings.NewReader("x"), 1, ""); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := e.store.Stat(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Stat(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := e.store.Open(ctx, key, 0, -1); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Open(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := e.store.Delete(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want ErrInvalidKey", key, err)
		}
		if p, ok := e.store.(storage.Presigner); ok {
			if _, err := p.PresignGet(ctx, key, time.Minute); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("PresignGet(%q): %v, want ErrInvalidKey", key, err)
			}
		}
	}
	if objs, err := e.store.List(ctx, ""); err != nil || len(objs) != 0 {
		t.Fatalf("List after invalid Puts = %v, %v; want nothing stored", objs, err)
	}
	for _, key := range []string{"a", "a.b/c", "live/s-1/2026_x.mp4", "ünïcode/ключ", "with space/and+plus", ".hidden/x", "a/..b"} {
		if err := storage.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	// Valid keys with unusual characters round-trip.
	for _, key := range []string{"ünïcode/ключ", "with space/and+plus", ".hidden/x", "a/..b", "q?x=1&y=%20"} {
		put(t, e.store, key, []byte(key), "")
		if got, _ := readAll(t, e.store, key, 0, -1); string(got) != key {
			t.Errorf("%q read back as %q", key, got)
		}
	}
}

// checkNothingLeft asserts that a failed Put left no object and no debris.
func checkNothingLeft(t *testing.T, e *env, key string) {
	t.Helper()
	if _, err := e.store.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%q) after a failed Put: %v, want ErrNotFound", key, err)
	}
	if objs, err := e.store.List(t.Context(), ""); err != nil || len(objs) != 0 {
		t.Errorf("List after a failed Put = %v, %v; want nothing", objs, err)
	}
	if l := e.leftovers(t); len(l) != 0 {
		t.Errorf("a failed Put left %q", l)
	}
}

func wantIntegrityError(t *testing.T, err error, field string) {
	t.Helper()
	var ie *storage.IntegrityError
	if !errors.As(err, &ie) || ie.Field != field {
		t.Fatalf("Put error = %v, want an IntegrityError on %s", err, field)
	}
	t.Logf("error: %v", err)
}

func testSizeMismatch(t *testing.T, e *env) {
	ctx := t.Context()
	data := randomBytes(1000, 3)
	_, err := e.store.Put(ctx, "short", bytes.NewReader(data[:600]), 1000, "")
	wantIntegrityError(t, err, "size")
	checkNothingLeft(t, e, "short")

	_, err = e.store.Put(ctx, "long", bytes.NewReader(data), 600, "")
	wantIntegrityError(t, err, "size")
	checkNothingLeft(t, e, "long")

	if _, err := e.store.Put(ctx, "negative", bytes.NewReader(nil), -1, ""); err == nil {
		t.Fatal("Put with size -1 succeeded")
	}
	checkNothingLeft(t, e, "negative")
}

// testSizeMismatchMultipart declares more bytes than there are, above the part size, as
// a stream and as a file truncated after its size was taken.
func testSizeMismatchMultipart(t *testing.T, e *env) {
	ctx := t.Context()
	data := randomBytes(3*testPartSize/2, 4)
	declared := int64(3 * testPartSize)

	// A plain stream (not seekable): the uploader buffers parts.
	_, err := e.store.Put(ctx, "stream", io.MultiReader(bytes.NewReader(data)), declared, "")
	wantIntegrityError(t, err, "size")
	checkNothingLeft(t, e, "stream")

	// A stream with more than declared.
	_, err = e.store.Put(ctx, "stream-long", io.MultiReader(bytes.NewReader(data)), int64(len(data))-testPartSize/4, "")
	wantIntegrityError(t, err, "size")
	checkNothingLeft(t, e, "stream-long")

	// A file, read in place by parallel parts.
	f := writeTemp(t, data)
	_, err = e.store.Put(ctx, "file", f, declared, "")
	wantIntegrityError(t, err, "size")
	checkNothingLeft(t, e, "file")
}

func testReaderError(t *testing.T, e *env) {
	boom := errors.New("boom")
	for _, size := range []int64{1000, 2 * testPartSize} {
		r := io.MultiReader(bytes.NewReader(randomBytes(int(size/2), 5)), iotest.ErrReader(boom))
		_, err := e.store.Put(t.Context(), "failing", r, size, "")
		if !errors.Is(err, boom) {
			t.Fatalf("Put of a failing %d-byte reader: %v, want boom", size, err)
		}
		checkNothingLeft(t, e, "failing")
	}
	// A canceled context stops the upload.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.store.Put(ctx, "canceled", bytes.NewReader(randomBytes(2*testPartSize, 6)), 2*testPartSize, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context: %v, want context.Canceled", err)
	}
	checkNothingLeft(t, e, "canceled")
}

func writeTemp(t *testing.T, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// testPutFromFileOffset puts the rest of a file from where it was read to, as a caller
// skipping a header would: only those bytes are stored, small or multipart.
func testPutFromFileOffset(t *testing.T, e *env) {
	for _, n := range []int{1000, 2*testPartSize + 123} {
		data := randomBytes(n, 7)
		f := writeTemp(t, data)
		if _, err := f.Seek(100, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("rest-%d", n)
		obj, err := e.store.Put(t.Context(), key, f, int64(n-100), "")
		if err != nil {
			t.Fatal(err)
		}
		if obj.Size != int64(n-100) {
			t.Fatalf("Size %d, want %d", obj.Size, n-100)
		}
		if got, _ := readAll(t, e.store, key, 0, -1); !bytes.Equal(got, data[100:]) {
			t.Fatalf("read back %d bytes, not the file from offset 100", len(got))
		}
	}
}

// testStream puts bodies that are neither seekable nor io.ReaderAt (what a muxer writing
// to a pipe would hand over), below, at and above the part size.
func testStream(t *testing.T, e *env) {
	for _, n := range []int{testPartSize / 2, testPartSize, testPartSize*2 + testPartSize/2} {
		data := randomBytes(n, uint64(n))
		key := fmt.Sprintf("stream-%d", n)
		obj, err := e.store.Put(t.Context(), key, iotest.HalfReader(bytes.NewReader(data)), int64(n), "")
		if err != nil {
			t.Fatalf("Put of a %d-byte stream: %v", n, err)
		}
		if obj.Size != int64(n) || (obj.ETag != md5hex(data) && obj.ETag != multipartETag(data, testPartSize)) {
			t.Fatalf("Put of a %d-byte stream = {Size %d ETag %q}", n, obj.Size, obj.ETag)
		}
		if got, _ := readAll(t, e.store, key, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("%d-byte stream read back as %d bytes", n, len(got))
		}
	}
}

// testConcurrent puts, reads and deletes keys in shared folders from many goroutines,
// for the race detector and the Local backend's creation and removal of folders.
func testConcurrent(t *testing.T, e *env) {
	putStatDelete(t, e.store, 16, 5, func(i int) string { return fmt.Sprintf("c/%d/x%d.flv", i%4, i) })
}

// putStatDelete runs workers goroutines, each putting, statting and deleting its key
// rounds times, and reports every error.
func putStatDelete(t *testing.T, s storage.Store, workers, rounds int, key func(worker int) string) {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			key := key(i)
			data := randomBytes(1000+i, uint64(i))
			for range rounds {
				if _, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), ""); err != nil {
					errs <- err
					return
				}
				if _, err := s.Stat(t.Context(), key); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(t.Context(), key); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testLargeFile uploads a 100 MB file (multipart on S3) with PutFile and reads it back.
func testLargeFile(t *testing.T, e *env) {
	if testing.Short() {
		t.Skip("100 MB upload skipped in -short mode")
	}
	const size = 100 << 20
	data := randomBytes(size, 8)
	f := writeTemp(t, data)
	f.Close()
	key := "big/recording.mp4"
	start := time.Now()
	obj, err := storage.PutFile(t.Context(), e.store, key, f.Name(), "video/mp4")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PutFile of 100 MiB: %v (%.0f MB/s)", time.Since(start), size/1e6/time.Since(start).Seconds())
	st, err := e.store.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.ETag != obj.ETag || st.ETag == "" {
		t.Fatalf("Stat = {Size %d ETag %q}, Put returned {%d %q}", st.Size, st.ETag, obj.Size, obj.ETag)
	}
	// Local: the MD5 of the content. S3: the multipart ETag, MD5 of the part MD5s.
	if want := multipartETag(data, testPartSize); st.ETag != md5hex(data) && st.ETag != want {
		t.Fatalf("ETag %q is neither the MD5 %q nor the multipart ETag %q", st.ETag, md5hex(data), want)
	}
	off, n := int64(size/2-12345), int64(3<<20)
	got, _ := readAll(t, e.store, key, off, n)
	if !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("range %d+%d read back %d bytes, not the file's", off, n, len(got))
	}
}

// multipartETag is the ETag S3 gives an object uploaded in parts of partSize.
func multipartETag(data []byte, partSize int) string {
	var sums []byte
	n := 0
	for off := 0; off < len(data); off += partSize {
		s := md5.Sum(data[off:min(off+partSize, len(data))])
		sums = append(sums, s[:]...)
		n++
	}
	return fmt.Sprintf("%s-%d", md5hex(sums), n)
}

func testPresign(t *testing.T, e *env) {
	p, ok := e.store.(storage.Presigner)
	if !ok {
		t.Skip("backend does not presign")
	}
	data := randomBytes(5000, 9)
	put(t, e.store, "vod/x.mp4", data, "video/mp4")
	url, err := p.PresignGet(t.Context(), "vod/x.mp4", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	get := func(rng string) (*http.Response, []byte) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, body := get("")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET presigned: %s, %d bytes", resp.Status, len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
		t.Errorf("Content-Type %q", ct)
	}
	resp, body = get("bytes=100-199")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
		t.Fatalf("GET presigned with Range: %s, %d bytes", resp.Status, len(body))
	}

	// Without the signature the object is not public.
	plain, _, _ := strings.Cut(url, "?")
	if code, err := httpGet(t, plain); err != nil || code != http.StatusForbidden {
		t.Errorf("GET without signature: %d, %v; want 403", code, err)
	}

	if _, err := p.PresignGet(t.Context(), "vod/x.mp4", 0); err == nil {
		t.Error("PresignGet with ttl 0 succeeded")
	}
}

func httpGet(t *testing.T, url string) (int, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
