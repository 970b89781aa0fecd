// Package wbuf buffers writes as bufio.Writer does, but holds its memory only while it
// holds data: Flush writes what is buffered and gives the buffer back to a pool shared
// by the process. A node keeps a writer per recorded format per stream and one per live
// HLS muxer; each bufio.Writer kept its 32–64 KiB for the life of its stream. Writers
// flushed whenever their owner has caught up (the recorder and the live HLS muxer do it
// at the end of each batch of packets) share a few buffers instead.
package wbuf

import (
	"io"
	"sync"
)

// Size is the buffer size: the most a writer holds before writing it out, and the
// write size from which data goes straight to the underlying writer.
const Size = 64 << 10

var pool = sync.Pool{New: func() any {
	b := make([]byte, 0, Size)
	return &b
}}

// Writer buffers writes to an io.Writer. After an error every write and flush returns
// it (the buffered data is dropped). The zero Writer is not usable: use New.
type Writer struct {
	w   io.Writer
	buf *[]byte // nil while nothing is buffered
	err error
}

// New returns a Writer writing to w.
func New(w io.Writer) *Writer { return &Writer{w: w} }

// Write buffers p, writing the buffer out first when p does not fit.
func (b *Writer) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.buf != nil && len(*b.buf)+len(p) > Size {
		if err := b.Flush(); err != nil {
			return 0, err
		}
	}
	if b.buf == nil && len(p) >= Size {
		return b.write(p)
	}
	if b.buf == nil {
		b.buf = pool.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// Flush writes what is buffered and gives the buffer back to the pool.
func (b *Writer) Flush() error {
	if b.buf == nil {
		return b.err
	}
	_, err := b.write(*b.buf)
	b.release()
	return err
}

// Buffered is the number of bytes waiting for Flush.
func (b *Writer) Buffered() int {
	if b.buf == nil {
		return 0
	}
	return len(*b.buf)
}

// Reset drops what is buffered and any error, and makes b write to w.
func (b *Writer) Reset(w io.Writer) {
	b.release()
	b.w, b.err = w, nil
}

func (b *Writer) write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *Writer) release() {
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		pool.Put(b.buf)
		b.buf = nil
	}
}
