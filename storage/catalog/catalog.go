package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/storage"
)

// Config is what New needs.
type Config struct {
	// Store holds the media and the catalog JSON: the truth.
	Store storage.Store
	// Redis holds the index. With the embedded queue, a client of its miniredis.
	Redis redis.UniversalClient
	// Prefix starts every key of the index (DefaultPrefix when empty).
	Prefix string
	// ReadConcurrency bounds the parallel reads of catalog JSON from the store in
	// Rebuild and while the index is not built (DefaultReadConcurrency when 0).
	ReadConcurrency int
	Log             *slog.Logger
}

// DefaultReadConcurrency suits S3, where a read is a round trip; a local store is
// limited by the disk before that.
const DefaultReadConcurrency = 32

// Catalog keeps the recording entries: the JSON beside each recording in the store is
// the truth, an index in Redis answers lookups without listing the store. Safe for
// concurrent use, by several processes sharing the store and the Redis.
type Catalog struct {
	store  storage.Store
	rdb    redis.UniversalClient
	prefix string
	conc   int
	log    *slog.Logger
}

// New returns the catalog of cfg.Store indexed in cfg.Redis. It does not touch either:
// call EnsureIndex at start.
func New(cfg Config) (*Catalog, error) {
	if cfg.Store == nil || cfg.Redis == nil {
		return nil, errors.New("catalog: a store and a redis client are required")
	}
	if cfg.ReadConcurrency < 0 {
		return nil, fmt.Errorf("catalog: read concurrency %d < 0", cfg.ReadConcurrency)
	}
	c := &Catalog{store: cfg.Store, rdb: cfg.Redis, prefix: cfg.Prefix, conc: cfg.ReadConcurrency, log: cfg.Log}
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if c.conc == 0 {
		c.conc = DefaultReadConcurrency
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// Put stores the entry's JSON in the store (at EntryKey, which it sets as CatalogKey),
// then indexes it. The media must be stored already. stream_param is stripped of push
// credentials and an empty type becomes "fragment", in rec too. An error after the
// store write leaves the truth written and the index behind: Put again (the upload job
// retries) or Rebuild.
func (c *Catalog) Put(ctx context.Context, rec *Recording) error {
	rec.normalize()
	if err := rec.validate(); err != nil {
		return err
	}
	rec.CatalogKey = EntryKey(rec)
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("catalog: put %s: %w", rec.FileID, err)
	}
	if _, err := c.store.Put(ctx, rec.CatalogKey, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
		return fmt.Errorf("catalog: put %s: store %s: %w", rec.FileID, rec.CatalogKey, err)
	}
	if err := c.index(ctx, rec); err != nil {
		return fmt.Errorf("catalog: put %s: stored, not indexed: %w", rec.FileID, err)
	}
	return nil
}

// index writes one entry into the index.
func (c *Catalog) index(ctx context.Context, rec *Recording) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return putScript.Run(ctx, c.rdb, nil,
		c.prefix, rec.FileID, b, facet(rec), score(rec.StartTime), version(rec)).Err()
}

// indexed reads the JSON of id in the index hash (nil when it is not there) and whether
// the index is built (else the store decides what the index lacks).
func (c *Catalog) indexed(ctx context.Context, hash, id string) (js []byte, built bool, err error) {
	pipe := c.rdb.Pipeline()
	entry := pipe.HGet(ctx, c.prefix+hash, id)
	isBuilt := pipe.Exists(ctx, c.prefix+keyBuilt)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, err
	}
	js, _ = entry.Bytes() // redis.Nil: not indexed
	return js, isBuilt.Val() == 1, nil
}

// Get returns the entry of a file id, or an error wrapping storage.ErrNotFound. It
// reads the index; while the index is not built (a rebuild has not completed), an id
// the index lacks is looked for in the store.
func (c *Catalog) Get(ctx context.Context, fileID string) (*Recording, error) {
	if fileID == "" || len(fileID) > maxFieldLen {
		return nil, fmt.Errorf("catalog: get %.40q: %w", fileID, storage.ErrNotFound)
	}
	b, built, err := c.indexed(ctx, keyEntries, fileID)
	if err != nil {
		return nil, fmt.Errorf("catalog: get %s: index: %w", fileID, err)
	}
	if b != nil {
		rec, err := decodeEntry(b)
		if err != nil {
			return nil, fmt.Errorf("catalog: get %s: index entry: %w", fileID, err)
		}
		return rec, nil
	}
	if built {
		return nil, fmt.Errorf("catalog: get %s: %w", fileID, storage.ErrNotFound)
	}
	// Not built: the store decides. Every catalog key names its file id (templates
	// must contain {file_id}), so only those are read.
	var (
		mu    sync.Mutex
		found *Recording
	)
	_, err = c.scan(ctx, func(key string) bool { return strings.Contains(key, fileID) },
		func(_ string, rec *Recording) error {
			if rec.FileID == fileID {
				mu.Lock()
				found = rec
				mu.Unlock()
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("catalog: get %s from the store: %w", fileID, err)
	}
	if found == nil {
		return nil, fmt.Errorf("catalog: get %s: %w", fileID, storage.ErrNotFound)
	}
	return found, nil
}

// Query selects entries; empty fields match anything.
type Query struct {
	App, StreamID, Format, Type string
	// From and To bound the start time, both included, to the microsecond.
	From, To time.Time
	// Page counts from 1 (1 when 0); PageSize is 1..MaxPageSize (DefaultPageSize when 0).
	Page, PageSize int
}

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// pageOf checks a page and page size, 0 standing for the first page and the default size.
func pageOf(page, size int) (int, int, error) {
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = DefaultPageSize
	}
	if page < 1 || size < 1 || size > MaxPageSize {
		return 0, 0, fmt.Errorf("page %d, page size %d: want page >= 1, page size 1..%d", page, size, MaxPageSize)
	}
	return page, size, nil
}

// Result is one page of entries in order of start time, and how many match in all.
type Result struct {
	Recordings []*Recording
	Total      int
}

// List returns the entries matching q, oldest first. It reads the index only (two
// round trips); while the index is not built it reads every entry in the store.
func (c *Catalog) List(ctx context.Context, q Query) (Result, error) {
	var err error
	if q.Page, q.PageSize, err = pageOf(q.Page, q.PageSize); err != nil {
		return Result{}, fmt.Errorf("catalog: list: %w", err)
	}
	for _, v := range []string{q.App, q.StreamID, q.Format, q.Type} {
		if len(v) > maxFieldLen {
			return Result{}, fmt.Errorf("catalog: list: a filter is longer than %d bytes", maxFieldLen)
		}
	}
	set := c.setKey(q.App, q.StreamID, q.Format, q.Type)
	lo, hi := "-inf", "+inf"
	if !q.From.IsZero() {
		lo = strconv.FormatInt(q.From.UnixMicro(), 10)
	}
	if !q.To.IsZero() {
		hi = strconv.FormatInt(q.To.UnixMicro(), 10)
	}
	offset := int64(q.Page-1) * int64(q.PageSize)

	pipe := c.rdb.Pipeline()
	built := pipe.Exists(ctx, c.prefix+keyBuilt)
	total := pipe.ZCount(ctx, set, lo, hi)
	ids := pipe.ZRangeByScore(ctx, set, &redis.ZRangeBy{Min: lo, Max: hi, Offset: offset, Count: int64(q.PageSize)})
	if _, err := pipe.Exec(ctx); err != nil {
		return Result{}, fmt.Errorf("catalog: list: index: %w", err)
	}
	if built.Val() != 1 {
		return c.listFromStore(ctx, q)
	}
	res := Result{Total: int(total.Val())}
	if len(ids.Val()) == 0 {
		return res, nil
	}
	vals, err := c.rdb.HMGet(ctx, c.prefix+keyEntries, ids.Val()...).Result()
	if err != nil {
		return Result{}, fmt.Errorf("catalog: list: index entries: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // deleted between the two round trips
		}
		rec, err := decodeEntry([]byte(s))
		if err != nil {
			return Result{}, fmt.Errorf("catalog: list: index entry %s: %w", ids.Val()[i], err)
		}
		res.Recordings = append(res.Recordings, rec)
	}
	return res, nil
}

// matches is List's filter, for the entries read from the store.
func (q *Query) matches(r *Recording) bool {
	at := r.StartTime.UnixMicro()
	switch {
	case q.App != "" && r.App != q.App,
		q.StreamID != "" && r.StreamID != q.StreamID,
		q.Format != "" && r.Format != q.Format,
		q.Type != "" && r.Type != q.Type,
		!q.From.IsZero() && at < q.From.UnixMicro(),
		!q.To.IsZero() && at > q.To.UnixMicro():
		return false
	}
	return true
}

// listFromStore answers List from the store, as the index would.
func (c *Catalog) listFromStore(ctx context.Context, q Query) (Result, error) {
	var (
		mu  sync.Mutex
		all []*Recording
	)
	_, err := c.scan(ctx, nil, func(_ string, rec *Recording) error {
		if q.matches(rec) {
			mu.Lock()
			all = append(all, rec)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("catalog: list from the store: %w", err)
	}
	slices.SortFunc(all, func(a, b *Recording) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.FileID, b.FileID)
	})
	lo := min((q.Page-1)*q.PageSize, len(all))
	return Result{Recordings: all[lo:min(lo+q.PageSize, len(all))], Total: len(all)}, nil
}

// tombstoneTTL is how long a deleted file id stays barred from rebuilds: far longer
// than a rebuild runs.
const tombstoneTTL = 24 * time.Hour

// Delete removes a recording: its media, then its catalog JSON, then its index entry,
// so that a failure half-way leaves an entry that the delete can be repeated on. An
// unknown file id is an error wrapping storage.ErrNotFound.
func (c *Catalog) Delete(ctx context.Context, fileID string) error {
	rec, err := c.Get(ctx, fileID)
	if err != nil {
		return err
	}
	keys := slices.Clone(rec.Objects)
	if len(keys) == 0 && rec.Key != "" {
		keys = []string{rec.Key}
	}
	for _, key := range append(keys, EntryKey(rec)) {
		if err := c.store.Delete(ctx, key); err != nil {
			return fmt.Errorf("catalog: delete %s: %w", fileID, err)
		}
	}
	if err := c.unindex(ctx, fileID, true); err != nil {
		return fmt.Errorf("catalog: delete %s: removed from the store, not from the index: %w", fileID, err)
	}
	return nil
}

// unindex removes a file id from the index, leaving a tombstone if asked.
func (c *Catalog) unindex(ctx context.Context, fileID string, tombstone bool) error {
	now := time.Now()
	ts := ""
	if tombstone {
		ts = strconv.FormatInt(now.UnixMilli(), 10)
	}
	return deleteScript.Run(ctx, c.rdb, nil, c.prefix, fileID, ts, now.Add(-tombstoneTTL).UnixMilli()).Err()
}

// scan reads, with c.conc readers, every catalog JSON in the store whose key passes
// want (nil: all), and calls fn with each entry, from several goroutines. Objects that
// are not catalog entries (other JSON; counted in skipped) and entries deleted
// meanwhile are skipped.
func (c *Catalog) scan(ctx context.Context, want func(key string) bool, fn func(key string, rec *Recording) error) (skipped int, err error) {
	objs, err := c.store.List(ctx, "")
	if err != nil {
		return 0, err
	}
	var notEntries atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	keys := make(chan storage.Object)
	var wg sync.WaitGroup
	for range c.conc {
		wg.Go(func() {
			for o := range keys {
				rec, err := c.readEntry(ctx, o)
				switch {
				case errors.Is(err, storage.ErrNotFound):
					continue
				case errors.Is(err, errNotEntry):
					c.log.Warn("catalog: not a catalog entry, skipped", "key", o.Key, "err", err)
					notEntries.Add(1)
					continue
				case err != nil:
					cancel(err)
					return
				}
				if err := fn(o.Key, rec); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
feed:
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") || isBroadcastKey(o.Key) || (want != nil && !want(o.Key)) {
			continue
		}
		select {
		case keys <- o:
		case <-ctx.Done():
			break feed
		}
	}
	close(keys)
	wg.Wait()
	return int(notEntries.Load()), context.Cause(ctx)
}

// errNotEntry marks a JSON object in the store that is not a catalog entry.
var errNotEntry = errors.New("not a catalog entry")

// readEntry reads and checks the catalog JSON at o.Key. Its CatalogKey is where it was
// found.
func (c *Catalog) readEntry(ctx context.Context, o storage.Object) (*Recording, error) {
	if o.Size > maxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errNotEntry, o.Size, maxEntrySize)
	}
	rc, obj, err := c.store.Open(ctx, o.Key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Key, err)
	}
	defer rc.Close()
	if obj.Size > maxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errNotEntry, obj.Size, maxEntrySize)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxEntrySize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Key, err)
	}
	rec, err := decodeEntry(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotEntry, err)
	}
	if err := rec.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotEntry, err)
	}
	rec.CatalogKey = o.Key
	return rec, nil
}
