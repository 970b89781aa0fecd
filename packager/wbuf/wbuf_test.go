package wbuf

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
)

func TestWriterBuffersInOrder(t *testing.T) {
	var out bytes.Buffer
	w := New(&out)
	var want []byte
	write := func(p []byte) {
		t.Helper()
		if n, err := w.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
		want = append(want, p...)
	}
	write([]byte("hello "))
	write(bytes.Repeat([]byte("a"), 1000))
	if out.Len() != 0 || w.Buffered() != 1006 {
		t.Fatalf("after small writes: %d written, %d buffered; want 0, 1006", out.Len(), w.Buffered())
	}
	write(bytes.Repeat([]byte("b"), Size-500)) // does not fit: the buffer goes first
	if out.Len() != 1006 || w.Buffered() != Size-500 {
		t.Fatalf("after a write that does not fit: %d written, %d buffered", out.Len(), w.Buffered())
	}
	write(bytes.Repeat([]byte("c"), 2*Size)) // large: after the buffer, straight through
	if w.Buffered() != 0 || out.Len() != len(want) {
		t.Fatalf("after a large write: %d written, %d buffered; want %d, 0", out.Len(), w.Buffered(), len(want))
	}
	write([]byte("end"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %d bytes, not the %d written in order", out.Len(), len(want))
	}
	if err := w.Flush(); err != nil || out.Len() != len(want) {
		t.Fatalf("Flush with nothing buffered: %v, %d bytes", err, out.Len())
	}
}

// TestFlushedWritersHoldNoBuffer: writers that flushed keep no buffer; the reason for
// the package (a bufio.Writer per recorded format per stream held 32–64 KiB each).
func TestFlushedWritersHoldNoBuffer(t *testing.T) {
	const writers = 256
	before := mediatest.HeapAfterGC()
	ws := make([]*Writer, writers)
	chunk := bytes.Repeat([]byte("x"), 40<<10)
	for i := range ws {
		ws[i] = New(io.Discard)
		ws[i].Write(chunk)
		if err := ws[i].Flush(); err != nil {
			t.Fatal(err)
		}
	}
	kept := mediatest.HeapAfterGC() - before
	runtime.KeepAlive(ws)
	if limit := int64(writers * Size / 16); kept > limit {
		t.Errorf("%d flushed writers keep %d KiB, want under %d KiB", writers, kept>>10, limit>>10)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n < 0 {
		return 0, errors.New("disk full")
	}
	return min(len(p), w.n), nil // a short write without an error
}

func TestWriterErrorsStay(t *testing.T) {
	fw := &failWriter{n: 3}
	w := New(fw)
	w.Write([]byte("hello"))
	if err := w.Flush(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Flush of a short write: %v, want io.ErrShortWrite", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Write after the error: %v", err)
	}
	fw.n = -1
	w.Reset(fw)
	w.Write([]byte("again"))
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Flush: %v, want the writer's error", err)
	}
	if err := w.Flush(); err == nil || w.Buffered() != 0 {
		t.Fatalf("second Flush: %v with %d buffered; want the error again, nothing kept", err, w.Buffered())
	}
	if _, err := w.Write(bytes.Repeat([]byte("y"), 2*Size)); err == nil {
		t.Fatal("a large Write after an error succeeded")
	}
}
