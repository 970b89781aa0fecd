package storage_test

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/livetape/livetape/storage"
)

// A ReaderAt serves a front-to-back read in small pieces (as http.ServeContent makes
// them) from one ranged request, and still reads right anywhere else.
func TestReaderAt(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := b.new(t)
			data := randomBytes(3<<20+123, 7)
			put(t, e.store, "r/obj.mp4", data, "video/mp4")
			r, err := storage.OpenReaderAt(t.Context(), e.store, "r/obj.mp4")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Size() != int64(len(data)) {
				t.Fatalf("size %d, want %d", r.Size(), len(data))
			}

			// Sequential 32 KiB reads, with small holes skipped: one request in all.
			buf := make([]byte, 32<<10)
			for off := int64(0); off < int64(len(data)); off += int64(len(buf)) + 100 {
				n, err := r.ReadAt(buf, off)
				end := min(off+int64(len(buf)), int64(len(data)))
				if n != int(end-off) || (err != nil && !(errors.Is(err, io.EOF) && end == int64(len(data)))) {
					t.Fatalf("read at %d: %d, %v", off, n, err)
				}
				if !bytes.Equal(buf[:n], data[off:end]) {
					t.Fatalf("read at %d: wrong bytes", off)
				}
			}
			if got := r.Opens(); got != 1 {
				t.Errorf("sequential read opened %d ranged reads, want 1", got)
			}

			// Backwards, and a jump forward past maxSkip: a new request each.
			for i, off := range []int64{1000, 2 << 20} {
				n, err := r.ReadAt(buf[:500], off)
				if n != 500 || err != nil || !bytes.Equal(buf[:500], data[off:off+500]) {
					t.Fatalf("read at %d: %d, %v", off, n, err)
				}
				if got := r.Opens(); got != 2+i {
					t.Errorf("after the read at %d: %d opens, want %d", off, got, 2+i)
				}
			}

			// The end: a short read says io.EOF, a read at the end reads nothing.
			n, err := r.ReadAt(buf, int64(len(data))-10)
			if n != 10 || !errors.Is(err, io.EOF) || !bytes.Equal(buf[:10], data[len(data)-10:]) {
				t.Errorf("read over the end: %d, %v", n, err)
			}
			if n, err := r.ReadAt(buf, int64(len(data))); n != 0 || err != io.EOF {
				t.Errorf("read at the end: %d, %v", n, err)
			}
			if _, err := r.ReadAt(buf, -1); !errors.Is(err, storage.ErrInvalidRange) {
				t.Errorf("read at -1: %v, want ErrInvalidRange", err)
			}

			// Concurrent readers get their own bytes.
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					p := make([]byte, 4096)
					for i := range 20 {
						off := int64((g*20+i)*37_000) % int64(len(data)-len(p))
						if n, err := r.ReadAt(p, off); n != len(p) || err != nil || !bytes.Equal(p, data[off:off+int64(len(p))]) {
							t.Errorf("concurrent read at %d: %d, %v", off, n, err)
							return
						}
					}
				})
			}
			wg.Wait()

			if _, err := storage.OpenReaderAt(t.Context(), e.store, "r/missing.mp4"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("missing object: %v, want ErrNotFound", err)
			}
		})
	}
}
