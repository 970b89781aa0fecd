package storage

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Local stores objects as files under Dir: key "a/b.mp4" is the file Dir/a/b.mp4, so the
// directory can be served or copied as it is. Each object has a JSON sidecar
// "b.mp4.livetape-meta" beside it with its MD5 and content type (the file system keeps
// neither); List hides sidecars and temporary files.
//
// Put writes a temporary file in the target folder, fsyncs it and renames it over the
// key, so a reader or a crash sees the old object or the new one, never a mix. The
// sidecar records the size and modification time of the file it describes; a sidecar
// that does not match its file (a crash between the two renames, a file copied in by
// hand) is ignored and the MD5 computed again from the file.
//
// A key cannot be both an object and a folder of other keys ("a" and "a/b"), which S3
// allows: Put fails in that case.
type Local struct {
	Dir string
}

var (
	_ Store = Local{}
)

const (
	metaSuffix = reservedMark + "meta"
	tmpPattern = reservedMark + "tmp-*"
)

// localMeta is the sidecar of one object.
type localMeta struct {
	Size        int64  `json:"size"`
	ModTimeNS   int64  `json:"mtime_ns"` // of the data file, to detect a stale sidecar
	MD5         string `json:"md5"`
	ContentType string `json:"content_type"`
}

func (l Local) path(key string) string { return filepath.Join(l.Dir, filepath.FromSlash(key)) }

func metaPath(p string) string { return p + metaSuffix }

// Put implements Store.
func (l Local) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	if size < 0 {
		return Object{}, fmt.Errorf("storage: put %q: negative size %d", key, size)
	}
	tmp, err := createTemp(filepath.Dir(l.path(key)))
	if err != nil {
		return Object{}, fmt.Errorf("storage: put %q: %w", key, err)
	}
	h := md5.New()
	body := &exactReader{r: ctxReader{ctx, r}, key: key, size: size}
	if _, err := io.Copy(io.MultiWriter(tmp, h), body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		if ie := (*IntegrityError)(nil); errors.As(err, &ie) {
			return Object{}, ie
		}
		return Object{}, fmt.Errorf("storage: put %q: write: %w", key, err)
	}
	return l.commit(key, tmp, hex.EncodeToString(h.Sum(nil)), size, contentType)
}

// PutFile stores the file at path under key as a hard link when path is on the same
// file system (the spool and the store of one node usually are): no copy of the data
// is written and synced again. Elsewhere, or when the file system has no hard links,
// it copies as Put does. The file must not change afterwards (a closed recording does
// not).
//
// A linked file of at most lazyHashSize bytes with its default content type (an HLS
// segment) is not hashed now: its MD5, the ETag, and its sidecar are made when it is
// first read (Stat or Open; List gives no ETag until then), and the Object returned
// here has none. Most
// recorded segments are read rarely if ever, and hashing each as it was stored was a
// tenth of a recording node's CPU; hashing one when it is first read costs that reader
// about a millisecond.
func (l Local) PutFile(ctx context.Context, key, path, contentType string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	tmp, err := l.linkTemp(key, path)
	if err != nil {
		return putFileCopy(ctx, l, key, path, contentType)
	}
	fi, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return Object{}, fmt.Errorf("storage: put %q: %w", key, err)
	}
	if fi.Size() <= lazyHashSize && (contentType == "" || contentType == defaultContentType(key)) {
		return l.commit(key, tmp, "", fi.Size(), contentType)
	}
	h := md5.New()
	if _, err := io.Copy(h, ctxReader{ctx, tmp}); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return Object{}, fmt.Errorf("storage: put %q from file: %w", key, err)
	}
	return l.commit(key, tmp, hex.EncodeToString(h.Sum(nil)), fi.Size(), contentType)
}

// lazyHashSize is the largest linked file whose MD5 waits for its first read (see
// PutFile): a few seconds of video, hashed in a few milliseconds.
const lazyHashSize = 16 << 20

// linkTemp links path to a new temporary name in key's folder and opens it.
func (l Local) linkTemp(key, path string) (*os.File, error) {
	f, err := createTemp(filepath.Dir(l.path(key)))
	if err != nil {
		return nil, err
	}
	// The temporary name is unique; it is freed for the link, which fails (and the
	// caller copies) in the unlikely case another Put takes it meanwhile.
	name := f.Name()
	f.Close()
	os.Remove(name)
	if err := os.Link(path, name); err != nil {
		return nil, err
	}
	if f, err = os.Open(name); err != nil {
		os.Remove(name)
		return nil, err
	}
	return f, nil
}

// commit makes tmp, holding size bytes whose MD5 is sum, the object under key: synced,
// its sidecar written, renamed over the key. With no sum there is no sidecar (any old
// one is removed first): the first Stat hashes the data and writes it. tmp is closed,
// and removed on failure.
func (l Local) commit(key string, tmp *os.File, sum string, size int64, contentType string) (Object, error) {
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if contentType == "" {
		contentType = defaultContentType(key)
	}
	p := l.path(key)
	dir := filepath.Dir(p)
	if err := tmp.Sync(); err != nil {
		return Object{}, fmt.Errorf("storage: put %q: fsync: %w", key, err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return Object{}, fmt.Errorf("storage: put %q: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Object{}, fmt.Errorf("storage: put %q: close: %w", key, err)
	}
	if fi.Size() != size {
		return Object{}, &IntegrityError{Key: key, Field: "size", Want: fmt.Sprint(size), Got: fmt.Sprint(fi.Size())}
	}
	meta := localMeta{Size: fi.Size(), ModTimeNS: fi.ModTime().UnixNano(), MD5: sum, ContentType: contentType}
	// The sidecar goes first: were the sidecar renamed after the data, a crash in
	// between would leave the new data with the old sidecar, which may match its size.
	if sum == "" {
		if err := os.Remove(metaPath(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Object{}, fmt.Errorf("storage: put %q: sidecar: %w", key, err)
		}
	} else if err := writeMeta(p, meta); err != nil {
		return Object{}, fmt.Errorf("storage: put %q: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return Object{}, fmt.Errorf("storage: put %q: %w", key, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return Object{}, fmt.Errorf("storage: put %q: %w", key, err)
	}
	// Confirm what is now under the key, as a remote backend would.
	got, err := os.Stat(p)
	if err != nil {
		return Object{}, fmt.Errorf("storage: put %q: stat after rename: %w", key, err)
	}
	if got.Size() != size {
		return Object{}, &IntegrityError{Key: key, Field: "size", Want: fmt.Sprint(size), Got: fmt.Sprint(got.Size())}
	}
	return meta.object(key), nil
}

// Open implements Store.
func (l Local) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Object, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Object{}, err
	}
	if err := checkRange(key, offset, length); err != nil {
		return nil, Object{}, err
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		return nil, Object{}, fmt.Errorf("storage: open %q: %w", key, notFound(err))
	}
	obj, err := l.stat(ctx, key, f)
	if err != nil {
		f.Close()
		return nil, Object{}, err
	}
	n, err := clampRange(key, offset, length, obj.Size)
	if err != nil {
		f.Close()
		return nil, Object{}, err
	}
	return &sectionFile{Reader: io.NewSectionReader(f, offset, n), f: f}, obj, nil
}

// sectionFile reads a range of an open file and closes the file.
type sectionFile struct {
	io.Reader
	f *os.File
}

func (s *sectionFile) Close() error { return s.f.Close() }

// Stat implements Store.
func (l Local) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		return Object{}, fmt.Errorf("storage: stat %q: %w", key, notFound(err))
	}
	defer f.Close()
	return l.stat(ctx, key, f)
}

// stat describes the open data file f of key from its sidecar, or from its content when
// the sidecar is missing or stale.
func (l Local) stat(ctx context.Context, key string, f *os.File) (Object, error) {
	fi, err := f.Stat()
	if err != nil {
		return Object{}, fmt.Errorf("storage: stat %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fmt.Errorf("storage: stat %q: not a file: %w", key, ErrNotFound)
	}
	p := l.path(key)
	if m, ok := readMeta(p, fi); ok {
		return m.object(key), nil
	}
	h := md5.New()
	if _, err := io.Copy(h, ctxReader{ctx, io.NewSectionReader(f, 0, fi.Size())}); err != nil {
		return Object{}, fmt.Errorf("storage: stat %q: hash: %w", key, err)
	}
	m := localMeta{Size: fi.Size(), ModTimeNS: fi.ModTime().UnixNano(), MD5: hex.EncodeToString(h.Sum(nil)), ContentType: defaultContentType(key)}
	// Best effort, so that the next Stat does not hash again; a failure changes nothing.
	_ = writeMeta(p, m)
	return m.object(key), nil
}

// Delete implements Store.
func (l Local) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	p := l.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(notFound(err), ErrNotFound) {
			return nil
		}
		return fmt.Errorf("storage: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a folder of other keys, not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %q: %w", key, err)
	}
	if err := os.Remove(metaPath(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %q: sidecar: %w", key, err)
	}
	// Remove the folders the key leaves empty, as S3 has no folders to leave behind.
	// os.Remove fails on a folder that is not empty, which ends the walk up.
	root := filepath.Clean(l.Dir)
	for d := filepath.Dir(p); d != root && strings.HasPrefix(d, root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// List implements Store.
func (l Local) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	// Walk only the deepest folder that the prefix names entirely.
	startKey := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		startKey = prefix[:i]
	}
	start := l.Dir
	if startKey != "" {
		start = l.path(startKey)
	}
	var out []Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(notFound(err), ErrNotFound) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(l.Dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p == start || strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				return nil
			}
			return fs.SkipDir
		}
		if !d.Type().IsRegular() || strings.Contains(d.Name(), reservedMark) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		// The ETag is the sidecar's; a listing does not hash objects that have none
		// yet (see PutFile): a store of recorded segments would be read whole.
		m, ok := readMeta(p, fi)
		if !ok {
			m = localMeta{Size: fi.Size(), ModTimeNS: fi.ModTime().UnixNano(), ContentType: defaultContentType(key)}
		}
		out = append(out, m.object(key))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (m localMeta) object(key string) Object {
	return Object{Key: key, Size: m.Size, ETag: m.MD5, ModTime: time.Unix(0, m.ModTimeNS), ContentType: m.ContentType}
}

// readMeta returns the sidecar of the data file p if it describes fi.
func readMeta(p string, fi fs.FileInfo) (localMeta, bool) {
	b, err := os.ReadFile(metaPath(p))
	if err != nil {
		return localMeta{}, false
	}
	var m localMeta
	if json.Unmarshal(b, &m) != nil || m.Size != fi.Size() || m.ModTimeNS != fi.ModTime().UnixNano() || m.MD5 == "" {
		return localMeta{}, false
	}
	return m, true
}

// writeMeta replaces the sidecar of p atomically.
func writeMeta(p string, m localMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp, err := createTemp(filepath.Dir(p))
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("sidecar: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("sidecar: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("sidecar: %w", err)
	}
	if err := os.Rename(tmp.Name(), metaPath(p)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("sidecar: %w", err)
	}
	return nil
}

// createTemp creates a temporary file in dir, creating dir first. A concurrent Delete
// removes the folders it leaves empty, shared parents included, so dir (or a parent
// MkdirAll just made) can vanish before the next step; that is retried. Each retry
// follows another caller's removal, so a few suffice unless folders are deleted
// nonstop.
func createTemp(dir string) (*os.File, error) {
	var err error
	for range 20 {
		var f *os.File
		if err = os.MkdirAll(dir, 0o755); err == nil {
			if f, err = os.CreateTemp(dir, tmpPattern); err == nil {
				return f, nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// notFound maps the file system's "no such file" (and "not a directory", when a key
// goes through a file: "a/b" with "a" a file) to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	}
	return err
}

// defaultContentType guesses a content type from the key's extension, for objects put
// without one. Go's table lacks some media types that recordings use.
func defaultContentType(key string) string {
	ext := strings.ToLower(path.Ext(key))
	switch ext {
	case ".flv":
		return "video/x-flv"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".mp4", ".m4s":
		return "video/mp4"
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
