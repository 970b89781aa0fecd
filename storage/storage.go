// Package storage keeps recordings: one Store interface with a local directory backend
// (the zero-setup default) and an S3-compatible backend (for scaled-out deployments and
// for players that fetch replays straight from the bucket).
//
// The spool is the truth for unfinished work and nothing is deleted from it before the
// storage confirmed an upload, so Put does not just send bytes: it checks what the backend
// reports back (size, and the MD5 where the backend gives one) and fails with an
// *IntegrityError when that differs from what was sent. A caller may delete its copy once
// Put returned nil.
//
// The package imports nothing from livetape: backends in Go and tools may use it alone.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Store is where finished recordings live. Keys are slash-separated paths such as
// "live/stream1/20261121T100000_abc.mp4"; see ValidateKey for the rules. Every method is
// safe for concurrent use.
type Store interface {
	// Put stores size bytes read from r under key, replacing any object there, and
	// returns the object as the backend confirmed it. r must yield exactly size bytes:
	// a shorter or longer body is an error and leaves no object behind (an object that
	// was at key before may be gone). Put never returns a partially written object.
	// Where r is left positioned afterwards is unspecified. Of concurrent Puts to one
	// key, the one whose object is not what the key holds afterwards may fail with an
	// *IntegrityError: it cannot confirm its upload.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error)

	// Open returns a reader of length bytes starting at offset (length -1 reads to the
	// end; a length past the end is cut at the end, as in an HTTP Range) and the
	// object's metadata, whose Size is the whole object's size. offset must lie inside
	// the object (ErrInvalidRange otherwise), except that (0, -1) opens an empty object.
	// The caller closes the reader.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Object, error)

	// Stat returns the object's metadata, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)

	// Delete removes the object. Deleting a key that does not exist is not an error,
	// so that a job that deletes twice (jobs are retried) does no harm; S3 gives no
	// way to tell the two cases apart anyway.
	Delete(ctx context.Context, key string) error

	// List returns the objects whose keys start with prefix (a plain string prefix,
	// not only a folder), in lexical order of their keys. ContentType may be empty:
	// S3 listings do not carry it.
	List(ctx context.Context, prefix string) ([]Object, error)
}

// Object describes a stored object.
type Object struct {
	Key  string
	Size int64
	// ETag is the backend's entity tag without quotes: the hex MD5 of the content for
	// the local backend and for single-part S3 uploads; "HEX-N" for S3 multipart
	// uploads. It changes when the content changes, so HTTP handlers can use it. The
	// local backend makes it lazily for segment-sized files it linked (Local.PutFile):
	// PutFile and List may then give none, Stat and Open always do.
	ETag        string
	ModTime     time.Time
	ContentType string
}

// Presigner is implemented by stores whose objects can be fetched by URL without
// livetape in the path (S3). The VOD handler redirects players there when configured to.
type Presigner interface {
	// PresignGet returns a URL that GETs key without credentials until ttl elapses.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

var (
	// ErrNotFound is wrapped by the errors of Stat and Open (and List never returns
	// it: an empty listing is not an error) when the key holds no object.
	ErrNotFound = errors.New("not found")

	// ErrInvalidRange is wrapped by Open when offset lies outside the object; the
	// VOD handler answers 416 for it.
	ErrInvalidRange = errors.New("invalid range")

	// ErrInvalidKey is wrapped by every method given a key that ValidateKey rejects.
	ErrInvalidKey = errors.New("invalid key")
)

// IntegrityError says that what the backend stored is not what Put sent. The upload job
// retries on it; the caller's copy must be kept.
type IntegrityError struct {
	Key   string
	Field string // "size", "md5", "parts" (multipart count) or "etag" (replaced meanwhile)
	Want  string // what Put was told to store, or computed while sending
	Got   string // what the reader yielded or the backend reported
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("storage: put %q: %s mismatch: want %s, got %s", e.Key, e.Field, e.Want, e.Got)
}

// reservedMark is part of the names of the local backend's sidecar and temporary files.
// Keys may not contain it, so that no key can collide with them or be hidden from List;
// the rule holds for every backend so that keys stay portable between them.
const reservedMark = ".livetape-"

// maxKeyLen is S3's limit on key length, in bytes.
const maxKeyLen = 1024

// ValidateKey reports whether key can name an object in every backend. A key is
// non-empty UTF-8 of at most 1024 bytes, split on "/" into elements that are neither
// empty (no leading or trailing "/", no "//") nor "." nor "..", with no NUL byte and
// without the reserved text ".livetape-". These rules keep a key from escaping the local
// directory and make the local and S3 backends agree on what a key names.
func ValidateKey(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("storage: %w %q: %s", ErrInvalidKey, key, err)
	}
	return nil
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty")
	case len(key) > maxKeyLen:
		return fmt.Errorf("longer than %d bytes", maxKeyLen)
	case strings.HasPrefix(key, "/"):
		return errors.New("starts with /")
	case strings.ContainsRune(key, 0):
		return errors.New("contains NUL")
	case strings.Contains(key, reservedMark):
		return fmt.Errorf("contains the reserved %q", reservedMark)
	case !utf8.ValidString(key):
		return errors.New("not UTF-8")
	}
	for el := range strings.SplitSeq(key, "/") {
		switch el {
		case "":
			return errors.New("has an empty element")
		case ".", "..":
			return fmt.Errorf("has a %q element", el)
		}
	}
	return nil
}

// validatePrefix checks a List prefix, which may be empty and may end in the middle of
// an element ("live/str"), so only the rules that keep it inside the store apply.
func validatePrefix(prefix string) error {
	bad := ""
	switch {
	case strings.HasPrefix(prefix, "/"):
		bad = "starts with /"
	case strings.ContainsRune(prefix, 0):
		bad = "contains NUL"
	case slices.Contains(strings.Split(prefix, "/"), ".."):
		bad = `has a ".." element`
	}
	if bad != "" {
		return fmt.Errorf("storage: %w prefix %q: %s", ErrInvalidKey, prefix, bad)
	}
	return nil
}

// checkRange validates Open's arguments before any I/O.
func checkRange(key string, offset, length int64) error {
	if offset < 0 || length < -1 {
		return fmt.Errorf("storage: open %q: offset %d length %d: %w", key, offset, length, ErrInvalidRange)
	}
	return nil
}

// clampRange resolves Open's (offset, length) against the object size: it returns the
// number of bytes to read, or an error wrapping ErrInvalidRange.
func clampRange(key string, offset, length, size int64) (int64, error) {
	if offset == 0 && length == -1 {
		return size, nil
	}
	if length == 0 && offset <= size {
		return 0, nil
	}
	if offset >= size {
		return 0, fmt.Errorf("storage: open %q: offset %d of a %d-byte object: %w", key, offset, size, ErrInvalidRange)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return n, nil
}

// FilePutter is a Store that stores a local file more cheaply than by reading it
// through Put (Local: a hard link).
type FilePutter interface {
	PutFile(ctx context.Context, key, path, contentType string) (Object, error)
}

// PutFile stores the file at path under key with the file's size; the S3 backend reads
// an *os.File's parts in parallel, buffering nothing, and a FilePutter does it its
// own way. This is how recordings are uploaded: the size is known and the body
// seekable, so a retried request can rewind.
func PutFile(ctx context.Context, s Store, key, path, contentType string) (Object, error) {
	if fp, ok := s.(FilePutter); ok {
		return fp.PutFile(ctx, key, path, contentType)
	}
	return putFileCopy(ctx, s, key, path, contentType)
}

// putFileCopy stores the file at path through s.Put.
func putFileCopy(ctx context.Context, s Store, key, path, contentType string) (Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return Object{}, fmt.Errorf("storage: put %q from file: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Object{}, fmt.Errorf("storage: put %q from file: %w", key, err)
	}
	return s.Put(ctx, key, f, fi.Size(), contentType)
}

// exactReader yields exactly size bytes of r and fails (rather than returning io.EOF)
// when r ends early or has more, so that an uploader aborts instead of committing a
// short object.
type exactReader struct {
	r    io.Reader
	key  string
	size int64
	n    int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n == e.size {
		// Probe for extra bytes: a longer body is as wrong as a shorter one.
		var one [1]byte
		k, err := io.ReadFull(e.r, one[:])
		if k > 0 {
			return 0, &IntegrityError{Key: e.key, Field: "size", Want: fmt.Sprint(e.size), Got: fmt.Sprintf("more than %d (reader longer than the declared size)", e.size)}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, io.EOF
		}
		return 0, err
	}
	if rest := e.size - e.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := e.r.Read(p)
	e.n += int64(k)
	if err == io.EOF {
		if e.n < e.size {
			return k, &IntegrityError{Key: e.key, Field: "size", Want: fmt.Sprint(e.size), Got: fmt.Sprintf("%d (reader ended early)", e.n)}
		}
		err = nil
	}
	return k, err
}
