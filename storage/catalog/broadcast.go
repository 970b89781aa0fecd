package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/storage"
)

// Broadcast is the catalog entry of a broadcast: the pushes of one app/stream id
// separated by less than the reconnect window, and what they recorded. Its JSON lives in
// the store at BroadcastKey (the truth a rebuild reads) and in the index. The JSON field
// names are a contract (API answers): never rename one.
type Broadcast struct {
	BroadcastID string `json:"broadcast_id"`
	App         string `json:"app"`
	StreamID    string `json:"stream_id"`
	// State is BroadcastLive until the reconnect window after the last push passed
	// without a new push, then BroadcastEnded.
	State     string    `json:"state"`
	StartTime time.Time `json:"start_time"`
	// EndTime is the end of the last push that ended (zero while the first is live).
	EndTime time.Time `json:"end_time,omitzero"`
	// Duration is the time pushed in seconds: the pushes' durations summed, the gaps
	// between them left out (a live push counts until now).
	Duration float64         `json:"duration"`
	Pushes   []BroadcastPush `json:"pushes"`
	// Recordings are the file ids of the fragments stored so far, oldest first.
	Recordings []string `json:"recordings"`
	// ReplayFileID is the stitched replay (a recording of type broadcast), once made.
	ReplayFileID string `json:"replay_file_id,omitempty"`
	// ReconnectWindow (seconds) and Stitch are what the last push asked for.
	ReconnectWindow float64 `json:"reconnect_window"`
	Stitch          bool    `json:"stitch"`
	// Rev counts the changes of the broadcast: of two writes the higher one wins.
	Rev int64 `json:"rev"`
	// CatalogKey is the key of this entry in the store.
	CatalogKey string `json:"catalog_key"`
}

// BroadcastPush is one push of a broadcast.
type BroadcastPush struct {
	PushID    string    `json:"push_id"`
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time,omitzero"` // zero while live
}

// Broadcast states.
const (
	BroadcastLive  = "live"
	BroadcastEnded = "ended"
)

// broadcastSuffix ends the key of every broadcast entry; no recording entry ends so
// (their stem ends with a file id, which has no dot), which is how a scan tells them
// apart.
const broadcastSuffix = ".broadcast.json"

// broadcastKeyPrefix starts the key of every broadcast entry.
const broadcastKeyPrefix = "broadcasts/"

// BroadcastKey is where the entry of a broadcast lives in the store.
func BroadcastKey(b *Broadcast) string {
	return broadcastKeyPrefix + b.App + "/" + b.StreamID + "/" + b.BroadcastID + broadcastSuffix
}

func isBroadcastKey(key string) bool { return strings.HasSuffix(key, broadcastSuffix) }

// validate checks what the index and the store key rely on.
func (b *Broadcast) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"broadcast_id", b.BroadcastID}, {"app", b.App}, {"stream_id", b.StreamID},
	} {
		switch {
		case f.v == "":
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		case len(f.v) > maxFieldLen:
			errs = append(errs, fmt.Errorf("%s is longer than %d bytes", f.name, maxFieldLen))
		case strings.ContainsAny(f.v, "/\x00"):
			errs = append(errs, fmt.Errorf("%s contains / or NUL", f.name))
		}
	}
	if b.State != BroadcastLive && b.State != BroadcastEnded {
		errs = append(errs, fmt.Errorf("state %q is not live or ended", b.State))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("catalog: broadcast %.80q: %w", b.BroadcastID, err)
	}
	return nil
}

// Keys of the broadcast index after the prefix (doc.go).
const (
	keyBcEntries = "b:entries" // hash: broadcast id -> entry JSON
	keyBcRev     = "b:rev"     // hash: broadcast id -> rev of the indexed entry
	keyBcSets    = "b:z:"      // sorted sets: "b:z:" + app/stream id with parts empty -> id by start
	keyBcLive    = "b:live"    // sorted set: the broadcasts whose indexed entry is live, by start
)

// broadcastSets are the 4 sets a broadcast is listed in: app and stream id, each or
// both replaced by "any".
func (c *Catalog) broadcastSets(app, streamID string) []string {
	a, s := url.PathEscape(app), url.PathEscape(streamID)
	return []string{
		c.prefix + keyBcSets + a + "/" + s, c.prefix + keyBcSets + a + "/",
		c.prefix + keyBcSets + "/" + s, c.prefix + keyBcSets + "/",
	}
}

// putBroadcastScript indexes an entry unless the index holds a newer rev of it.
// KEYS: entries, rev, the 4 sets, the live set. ARGV: id, JSON, rev, score, live (0|1).
var putBroadcastScript = redis.NewScript(`
local old = tonumber(redis.call("HGET", KEYS[2], ARGV[1]))
if old and old > tonumber(ARGV[3]) then return 0 end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
redis.call("HSET", KEYS[2], ARGV[1], ARGV[3])
for i = 3, 6 do redis.call("ZADD", KEYS[i], ARGV[4], ARGV[1]) end
if ARGV[5] == "1" then redis.call("ZADD", KEYS[7], ARGV[4], ARGV[1]) else redis.call("ZREM", KEYS[7], ARGV[1]) end
return 1
`)

// PutBroadcast stores the entry's JSON (at BroadcastKey, set as CatalogKey), then
// indexes it unless the index has a higher rev. The caller serializes writes of one
// broadcast (the store keeps the last write).
func (c *Catalog) PutBroadcast(ctx context.Context, b *Broadcast) error {
	if err := b.validate(); err != nil {
		return err
	}
	b.CatalogKey = BroadcastKey(b)
	js, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("catalog: put broadcast %s: %w", b.BroadcastID, err)
	}
	if _, err := c.store.Put(ctx, b.CatalogKey, bytes.NewReader(js), int64(len(js)), "application/json"); err != nil {
		return fmt.Errorf("catalog: put broadcast %s: store %s: %w", b.BroadcastID, b.CatalogKey, err)
	}
	if err := c.indexBroadcast(ctx, c.rdb, b); err != nil {
		return fmt.Errorf("catalog: put broadcast %s: stored, not indexed: %w", b.BroadcastID, err)
	}
	return nil
}

func (c *Catalog) indexBroadcast(ctx context.Context, rdb redis.Scripter, b *Broadcast) error {
	js, err := json.Marshal(b)
	if err != nil {
		return err
	}
	keys := append([]string{c.prefix + keyBcEntries, c.prefix + keyBcRev}, c.broadcastSets(b.App, b.StreamID)...)
	keys = append(keys, c.prefix+keyBcLive)
	live := "0"
	if b.State == BroadcastLive {
		live = "1"
	}
	return putBroadcastScript.Run(ctx, rdb, keys, b.BroadcastID, js, b.Rev, score(b.StartTime), live).Err()
}

// maxLiveBroadcasts bounds what LiveBroadcasts reads at once.
const maxLiveBroadcasts = 100_000

// LiveBroadcasts returns the broadcasts whose entry says live, oldest first (from the
// store while the index is not built). A broadcast stays live in the catalog until its
// end is written: one whose end was lost with a Redis (the embedded one at every
// restart) stays so until it is ended from its entry.
func (c *Catalog) LiveBroadcasts(ctx context.Context) ([]*Broadcast, error) {
	built, err := c.Built(ctx)
	if err != nil {
		return nil, err
	}
	if !built {
		all, err := c.broadcastsFromStore(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("catalog: live broadcasts from the store: %w", err)
		}
		return slices.DeleteFunc(all, func(b *Broadcast) bool { return b.State != BroadcastLive }), nil
	}
	ids, err := c.rdb.ZRange(ctx, c.prefix+keyBcLive, 0, maxLiveBroadcasts-1).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	vals, err := c.rdb.HMGet(ctx, c.prefix+keyBcEntries, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("catalog: live broadcasts: %w", err)
	}
	var out []*Broadcast
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var b Broadcast
		if err := json.Unmarshal([]byte(s), &b); err != nil {
			return nil, fmt.Errorf("catalog: live broadcasts: %w", err)
		}
		if b.State == BroadcastLive {
			out = append(out, &b)
		}
	}
	return out, nil
}

// GetBroadcast returns the entry of a broadcast, or an error wrapping
// storage.ErrNotFound. While the index is not built it reads the store.
func (c *Catalog) GetBroadcast(ctx context.Context, id string) (*Broadcast, error) {
	if id == "" || len(id) > maxFieldLen {
		return nil, fmt.Errorf("catalog: get broadcast %.40q: %w", id, storage.ErrNotFound)
	}
	js, built, err := c.indexed(ctx, keyBcEntries, id)
	if err != nil {
		return nil, fmt.Errorf("catalog: get broadcast %s: index: %w", id, err)
	}
	if js != nil {
		var b Broadcast
		if err := json.Unmarshal(js, &b); err != nil {
			return nil, fmt.Errorf("catalog: get broadcast %s: index entry: %w", id, err)
		}
		return &b, nil
	}
	if !built {
		all, err := c.broadcastsFromStore(ctx, func(key string) bool { return strings.HasSuffix(key, "/"+id+broadcastSuffix) })
		if err != nil {
			return nil, fmt.Errorf("catalog: get broadcast %s from the store: %w", id, err)
		}
		for _, b := range all {
			if b.BroadcastID == id {
				return b, nil
			}
		}
	}
	return nil, fmt.Errorf("catalog: get broadcast %.80q: %w", id, storage.ErrNotFound)
}

// BroadcastQuery selects broadcasts; empty fields match anything.
type BroadcastQuery struct {
	App, StreamID string
	// Page counts from 1 (1 when 0); PageSize is 1..MaxPageSize (DefaultPageSize when 0).
	Page, PageSize int
}

// BroadcastResult is one page of broadcasts by start time, and how many match.
type BroadcastResult struct {
	Broadcasts []*Broadcast
	Total      int
}

// ListBroadcasts returns the broadcasts matching q, oldest first, from the index (the
// store while the index is not built).
func (c *Catalog) ListBroadcasts(ctx context.Context, q BroadcastQuery) (BroadcastResult, error) {
	var err error
	if q.Page, q.PageSize, err = pageOf(q.Page, q.PageSize); err != nil {
		return BroadcastResult{}, fmt.Errorf("catalog: list broadcasts: %w", err)
	}
	if len(q.App) > maxFieldLen || len(q.StreamID) > maxFieldLen {
		return BroadcastResult{}, fmt.Errorf("catalog: list broadcasts: a filter is longer than %d bytes", maxFieldLen)
	}
	set := c.prefix + keyBcSets + url.PathEscape(q.App) + "/" + url.PathEscape(q.StreamID)
	offset := int64(q.Page-1) * int64(q.PageSize)
	pipe := c.rdb.Pipeline()
	built := pipe.Exists(ctx, c.prefix+keyBuilt)
	total := pipe.ZCard(ctx, set)
	ids := pipe.ZRangeByScore(ctx, set, &redis.ZRangeBy{Min: "-inf", Max: "+inf", Offset: offset, Count: int64(q.PageSize)})
	if _, err := pipe.Exec(ctx); err != nil {
		return BroadcastResult{}, fmt.Errorf("catalog: list broadcasts: index: %w", err)
	}
	if built.Val() != 1 {
		all, err := c.broadcastsFromStore(ctx, nil)
		if err != nil {
			return BroadcastResult{}, fmt.Errorf("catalog: list broadcasts from the store: %w", err)
		}
		all = slices.DeleteFunc(all, func(b *Broadcast) bool {
			return (q.App != "" && b.App != q.App) || (q.StreamID != "" && b.StreamID != q.StreamID)
		})
		lo := min(int(offset), len(all))
		return BroadcastResult{Broadcasts: all[lo:min(lo+q.PageSize, len(all))], Total: len(all)}, nil
	}
	res := BroadcastResult{Total: int(total.Val())}
	if len(ids.Val()) == 0 {
		return res, nil
	}
	vals, err := c.rdb.HMGet(ctx, c.prefix+keyBcEntries, ids.Val()...).Result()
	if err != nil {
		return BroadcastResult{}, fmt.Errorf("catalog: list broadcasts: index entries: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var b Broadcast
		if err := json.Unmarshal([]byte(s), &b); err != nil {
			return BroadcastResult{}, fmt.Errorf("catalog: list broadcasts: index entry %s: %w", ids.Val()[i], err)
		}
		res.Broadcasts = append(res.Broadcasts, &b)
	}
	return res, nil
}

// broadcastsFromStore reads the broadcast entries in the store whose key passes want
// (nil: all), oldest first.
func (c *Catalog) broadcastsFromStore(ctx context.Context, want func(key string) bool) ([]*Broadcast, error) {
	objs, err := c.store.List(ctx, broadcastKeyPrefix)
	if err != nil {
		return nil, err
	}
	var out []*Broadcast
	for _, o := range objs {
		if !isBroadcastKey(o.Key) || (want != nil && !want(o.Key)) {
			continue
		}
		b, err := c.readBroadcast(ctx, o)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue
		case errors.Is(err, errNotEntry):
			c.log.Warn("catalog: not a broadcast entry, skipped", "key", o.Key, "err", err)
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Broadcast) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.BroadcastID, b.BroadcastID)
	})
	return out, nil
}

// maxBroadcastEntrySize bounds a broadcast JSON read from the store before it is
// decoded (a broadcast lists its pushes and recordings: thousands of ids fit).
const maxBroadcastEntrySize = 4 << 20

func (c *Catalog) readBroadcast(ctx context.Context, o storage.Object) (*Broadcast, error) {
	if o.Size > maxBroadcastEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errNotEntry, o.Size, maxBroadcastEntrySize)
	}
	rc, _, err := c.store.Open(ctx, o.Key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Key, err)
	}
	defer rc.Close()
	js, err := io.ReadAll(io.LimitReader(rc, maxBroadcastEntrySize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Key, err)
	}
	if len(js) > maxBroadcastEntrySize {
		return nil, fmt.Errorf("%w: more than %d bytes", errNotEntry, maxBroadcastEntrySize)
	}
	var b Broadcast
	if err := json.Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotEntry, err)
	}
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotEntry, err)
	}
	b.CatalogKey = o.Key
	return &b, nil
}

// rebuildBroadcasts indexes every broadcast entry of the store and drops the indexed
// ones whose JSON is gone; part of Rebuild, before the index is marked built.
func (c *Catalog) rebuildBroadcasts(ctx context.Context) (indexed, removed int, err error) {
	all, err := c.broadcastsFromStore(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("read broadcasts: %w", err)
	}
	seen := make(map[string]bool, len(all))
	for _, b := range all {
		seen[b.BroadcastID] = true
		if err := c.indexBroadcast(ctx, c.rdb, b); err != nil {
			return indexed, 0, fmt.Errorf("index broadcast %s: %w", b.BroadcastID, err)
		}
		indexed++
	}
	kv, err := c.rdb.HGetAll(ctx, c.prefix+keyBcEntries).Result()
	if err != nil {
		return indexed, 0, fmt.Errorf("scan the broadcast index: %w", err)
	}
	for id, js := range kv {
		if seen[id] {
			continue
		}
		var b Broadcast
		if json.Unmarshal([]byte(js), &b) == nil && b.validate() == nil {
			if _, err := c.store.Stat(ctx, BroadcastKey(&b)); err == nil {
				continue // put after the listing
			} else if !errors.Is(err, storage.ErrNotFound) {
				return indexed, removed, fmt.Errorf("check broadcast %s: %w", id, err)
			}
		}
		pipe := c.rdb.TxPipeline()
		pipe.HDel(ctx, c.prefix+keyBcEntries, id)
		pipe.HDel(ctx, c.prefix+keyBcRev, id)
		pipe.ZRem(ctx, c.prefix+keyBcLive, id)
		for _, k := range c.broadcastSets(b.App, b.StreamID) {
			pipe.ZRem(ctx, k, id)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return indexed, removed, fmt.Errorf("remove broadcast %s: %w", id, err)
		}
		removed++
	}
	return indexed, removed, nil
}
