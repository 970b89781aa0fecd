package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/storage"
)

// ErrRebuildRunning is returned by Rebuild while another rebuild (of this process or
// another node) holds the lock.
var ErrRebuildRunning = errors.New("catalog: a rebuild of the index is running")

// RebuildStats says what a rebuild did.
type RebuildStats struct {
	Entries    int           // entries indexed
	Broadcasts int           // broadcast entries indexed
	Skipped    int           // JSON objects in the store that are not catalog entries, or duplicates
	Removed    int           // index entries whose catalog JSON is gone from the store
	Took       time.Duration // from the lock to the marker
}

const (
	// lockTTL outlives a crashed rebuild by little; a running one extends it.
	lockTTL = time.Minute
	// rebuildBatch entries are written to Redis in one transaction.
	rebuildBatch = 1000
	// clockSkew is how far apart the clocks of the nodes may be, for tombstones.
	clockSkew = time.Minute
)

// Built reports whether the index is complete: a rebuild completed since the Redis
// started (or was flushed).
func (c *Catalog) Built(ctx context.Context) (bool, error) {
	n, err := c.rdb.Exists(ctx, c.prefix+keyBuilt).Result()
	if err != nil {
		return false, fmt.Errorf("catalog: index marker: %w", err)
	}
	return n == 1, nil
}

// EnsureIndex rebuilds the index when it is not built (a new Redis, one restarted
// without persistence, or a rebuild that did not complete) and reports whether it did.
// It is cheap when the index is built: call it at start and periodically, so that a
// Redis restarted mid-run gets its index back. While another node rebuilds, it returns
// (false, nil): lookups read the store meanwhile.
func (c *Catalog) EnsureIndex(ctx context.Context) (bool, error) {
	built, err := c.Built(ctx)
	if err != nil || built {
		return false, err
	}
	st, err := c.Rebuild(ctx)
	if errors.Is(err, ErrRebuildRunning) {
		c.log.Info("catalog: index not built, another rebuild is running")
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.log.Info("catalog: index rebuilt", "entries", st.Entries, "broadcasts", st.Broadcasts, "skipped", st.Skipped, "removed", st.Removed, "took", st.Took.Round(time.Millisecond))
	return true, nil
}

// Rebuild reads every catalog JSON in the store (in parallel) and writes the index
// from them (in pipelined batches), removes index entries whose JSON is gone, then marks
// the index built. Lookups work meanwhile: until the mark they read the store. Entries
// Put during the rebuild are kept when newer than what the rebuild read, and entries
// Deleted during it are not brought back. Only one rebuild runs at a time across nodes.
func (c *Catalog) Rebuild(ctx context.Context) (RebuildStats, error) {
	start := time.Now()
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	ok, err := c.rdb.SetNX(ctx, c.prefix+keyLock, token, lockTTL).Result()
	if err != nil {
		return RebuildStats{}, fmt.Errorf("catalog: rebuild: lock: %w", err)
	}
	if !ok {
		return RebuildStats{}, ErrRebuildRunning
	}
	defer unlockScript.Run(context.WithoutCancel(ctx), c.rdb, nil, c.prefix, token)
	ctx, stop := c.holdLock(ctx, token)
	defer stop()

	b := &rebuilder{c: c, ctx: ctx, seen: make(map[string]string)}
	notEntries, err := c.scan(ctx, nil, b.add)
	b.stats.Skipped += notEntries
	if err == nil {
		err = b.flush(ctx)
	}
	if err == nil {
		err = b.removeStale(ctx)
	}
	if err == nil {
		var n, removed int
		n, removed, err = c.rebuildBroadcasts(ctx)
		b.stats.Broadcasts, b.stats.Removed = n, b.stats.Removed+removed
	}
	if cause := context.Cause(ctx); errors.Is(cause, errLockLost) {
		err = cause
	}
	if err != nil {
		return b.stats, fmt.Errorf("catalog: rebuild: %w", err)
	}
	b.stats.Took = time.Since(start)
	marker, _ := json.Marshal(map[string]any{"built_at": time.Now().UTC(), "entries": b.stats.Entries, "took_ms": b.stats.Took.Milliseconds()})
	done, err := finishScript.Run(ctx, c.rdb, nil, c.prefix, token, marker).Int()
	if err != nil {
		return b.stats, fmt.Errorf("catalog: rebuild: mark built: %w", err)
	}
	if done != 1 {
		return b.stats, errLockLost
	}
	// Tombstones older than this rebuild's listing can bar nothing any more.
	c.rdb.ZRemRangeByScore(ctx, c.prefix+keyDeleted, "-inf", "("+strconv.FormatInt(start.Add(-clockSkew).UnixMilli(), 10))
	return b.stats, nil
}

// holdLock extends the lock every lockTTL/3 until stop is called, and cancels the
// returned context with errLockLost when the lock is gone: Redis restarted or was
// flushed, and what the rebuild wrote before is lost with it.
func (c *Catalog) holdLock(ctx context.Context, token string) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := refreshScript.Run(ctx, c.rdb, nil, c.prefix, token, lockTTL.Milliseconds()).Int()
			if err == nil && n == 0 {
				cancel(errLockLost)
				return
			}
			// A failed refresh is retried at the next tick; the lock outlives two.
		}
	})
	return ctx, func() {
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

var errLockLost = errors.New("catalog: rebuild: the lock vanished (Redis restarted or flushed meanwhile?); the index is not marked built")

// rebuilder collects the entries scan reads, from several goroutines, and writes them
// in batches.
type rebuilder struct {
	c     *Catalog
	ctx   context.Context // the rebuild's
	mu    sync.Mutex
	batch []*Recording
	seen  map[string]string // file id -> catalog key
	stats RebuildStats
}

func (b *rebuilder) add(key string, rec *Recording) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if other, dup := b.seen[rec.FileID]; dup {
		b.c.log.Warn("catalog: rebuild: two entries with one file id, the second skipped", "file_id", rec.FileID, "key", other, "skipped", key)
		b.stats.Skipped++
		return nil
	}
	b.seen[rec.FileID] = key
	b.batch = append(b.batch, rec)
	if len(b.batch) < rebuildBatch {
		return nil
	}
	return b.flushLocked(b.ctx)
}

func (b *rebuilder) flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked(ctx)
}

// flushLocked writes the batch: one round trip reads what the index has of those ids,
// one transaction writes those that are not older than the index's nor deleted, with a
// ZADD per set rather than per entry.
func (b *rebuilder) flushLocked(ctx context.Context) error {
	batch := b.batch
	b.batch = nil
	if len(batch) == 0 {
		return nil
	}
	c := b.c
	ids := make([]string, len(batch))
	for i, r := range batch {
		ids[i] = r.FileID
	}
	pipe := c.rdb.Pipeline()
	vers := pipe.HMGet(ctx, c.prefix+keyVer, ids...)
	facets := pipe.HMGet(ctx, c.prefix+keyFacets, ids...)
	dead := pipe.ZMScore(ctx, c.prefix+keyDeleted, ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("index state of a batch: %w", err)
	}

	entries := make([]any, 0, 2*len(batch))
	facetVals := make([]any, 0, 2*len(batch))
	verVals := make([]any, 0, 2*len(batch))
	adds := make(map[string][]redis.Z)
	rems := make(map[string][]any)
	for i, r := range batch {
		if dead.Val()[i] != 0 {
			continue // deleted after the listing
		}
		ver := version(r)
		if old, ok := vers.Val()[i].(string); ok && old > ver {
			continue // Put meanwhile, newer than what was read
		}
		js, err := json.Marshal(r)
		if err != nil {
			return err
		}
		f := facet(r)
		if old, ok := facets.Val()[i].(string); ok && old != f {
			for _, k := range c.entrySets(old) {
				rems[k] = append(rems[k], r.FileID)
			}
		}
		for _, k := range c.entrySets(f) {
			adds[k] = append(adds[k], redis.Z{Score: score(r.StartTime), Member: r.FileID})
		}
		entries = append(entries, r.FileID, js)
		facetVals = append(facetVals, r.FileID, f)
		verVals = append(verVals, r.FileID, ver)
	}
	if len(entries) == 0 {
		return nil
	}
	tx := c.rdb.TxPipeline()
	for k, m := range rems {
		tx.ZRem(ctx, k, m...)
	}
	for k, zs := range adds {
		tx.ZAdd(ctx, k, zs...)
	}
	tx.HSet(ctx, c.prefix+keyEntries, entries...)
	tx.HSet(ctx, c.prefix+keyFacets, facetVals...)
	tx.HSet(ctx, c.prefix+keyVer, verVals...)
	if _, err := tx.Exec(ctx); err != nil {
		return fmt.Errorf("write a batch: %w", err)
	}
	b.stats.Entries += len(entries) / 2
	return nil
}

// removeStale drops the index entries whose catalog JSON the listing did not see and
// the store no longer has (an entry Put during the rebuild is kept).
func (b *rebuilder) removeStale(ctx context.Context) error {
	c := b.c
	var cursor uint64
	for {
		kv, next, err := c.rdb.HScan(ctx, c.prefix+keyEntries, cursor, "", 1000).Result()
		if err != nil {
			return fmt.Errorf("scan the index: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			id := kv[i]
			if _, ok := b.seen[id]; ok {
				continue
			}
			rec, err := decodeEntry([]byte(kv[i+1]))
			if err == nil {
				_, err = c.store.Stat(ctx, EntryKey(rec))
				if err == nil {
					continue // put after the listing
				}
				if !errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("check %s: %w", id, err)
				}
			}
			if err := c.unindex(ctx, id, false); err != nil {
				return fmt.Errorf("remove %s: %w", id, err)
			}
			b.stats.Removed++
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
