package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// maxSkip is how far forward a ReaderAt reads and discards on its open read rather than
// opening a new one: below a round trip's worth of bytes on S3, and it keeps the gaps
// between the chunks of a clip (the other track's samples) on one request.
const maxSkip = 1 << 20

// ReaderAt reads one object as an io.ReaderAt through Store.Open. It keeps one ranged
// read open and serves reads that follow each other from it, so a caller reading the
// object front to back in small pieces (http.ServeContent reads 32 KiB at a time) costs
// one request, not one a piece; a read elsewhere opens a new range from there to the
// end. Safe for concurrent use (reads are serialized). Close it when done.
type ReaderAt struct {
	ctx   context.Context
	store Store
	key   string
	size  int64

	mu    sync.Mutex
	rc    io.ReadCloser // open at pos, or nil
	pos   int64
	opens int
}

// OpenReaderAt opens key from its start (the first request, which also gives the
// object's size) and returns it as a ReaderAt bound to ctx.
func OpenReaderAt(ctx context.Context, s Store, key string) (*ReaderAt, error) {
	rc, obj, err := s.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	return &ReaderAt{ctx: ctx, store: s, key: key, size: obj.Size, rc: rc, opens: 1}, nil
}

// Size is the object's size in bytes.
func (r *ReaderAt) Size() int64 { return r.size }

// Opens is how many ranged reads were opened so far.
func (r *ReaderAt) Opens() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opens
}

// ReadAt reads len(p) bytes at off (fewer, with io.EOF, at the end of the object).
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read %q at %d: %w", r.key, off, ErrInvalidRange)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := p[:min(int64(len(p)), r.size-off)]
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.seek(off); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(r.rc, want)
	r.pos += int64(n)
	if err != nil {
		r.drop()
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the object is shorter than it said
		}
		return n, fmt.Errorf("storage: read %q at %d: %w", r.key, off+int64(n), err)
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// seek makes the open read stand at off, skipping forward on it when that is cheaper
// than a new request.
func (r *ReaderAt) seek(off int64) error {
	if r.rc != nil && off >= r.pos && off-r.pos <= maxSkip {
		n, err := io.CopyN(io.Discard, r.rc, off-r.pos)
		r.pos += n
		if err == nil {
			return nil
		}
	}
	r.drop()
	rc, _, err := r.store.Open(r.ctx, r.key, off, -1)
	if err != nil {
		return fmt.Errorf("storage: read %q at %d: %w", r.key, off, err)
	}
	r.rc, r.pos = rc, off
	r.opens++
	return nil
}

func (r *ReaderAt) drop() {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
}

// Close ends the open read, if any. The ReaderAt may still be used: it opens another.
func (r *ReaderAt) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop()
	return nil
}
