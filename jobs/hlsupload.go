package jobs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/packager/hls"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// An HLS recording is one playlist per broadcast (the pushes of a stream joined by
// EXT-X-DISCONTINUITY), whose segments are uploaded as they close. Its pushes may be
// recorded by different nodes, so its state is in the shared Redis: the segments
// uploaded (a hash, one field per segment, so concurrent uploads never lose one) and
// the pushes ended (with how many segments each closed). Every upload renders the
// EVENT playlist of what is stored so far; once every segment of every ended push is
// stored, TaskHLSFinalize renders the VOD playlist from the same state (the
// authoritative render), catalogs the recording and sends event 100, once.
const (
	// TaskHLSSegment uploads one closed segment from the spool of the node that
	// recorded it (its node queue).
	TaskHLSSegment = "recording:hls-segment"
	// TaskHLSFinalize ends a broadcast's HLS recording; it reads Redis and the bucket
	// only, so any worker runs it (QueueCPU).
	TaskHLSFinalize = "recording:hls-finalize"
)

// hlsStateTTL is how long the Redis state of an HLS recording is kept after its last
// change: long enough for a broadcast to end and be finalized again if asked.
const hlsStateTTL = 30 * 24 * time.Hour

// hlsPlaylistName is the playlist of a recording: {stem}/index.m3u8, as HLS fragments
// were stored.
const hlsPlaylistName = "index.m3u8"

// SegmentHandle names a closed HLS segment in the spool of the node that recorded it.
type SegmentHandle struct {
	NodeID   string `json:"node_id"`
	App      string `json:"app"`
	StreamID string `json:"stream_id"`
	PushID   string `json:"push_id"`
	Seq      int    `json:"seq"`
}

func (h SegmentHandle) String() string {
	return fmt.Sprintf("%s:%s/%s/%s/hls/%d", h.NodeID, h.App, h.StreamID, h.PushID, h.Seq)
}

// SegmentSpool is the recorder's spool as the HLS uploader sees it.
type SegmentSpool interface {
	// HLSSegment returns the path of the closed segment h on this node; the error
	// wraps ErrFragmentGone when the spool no longer holds it.
	HLSSegment(h SegmentHandle) (string, error)
	// RemoveHLSSegment deletes it once storage holds it; a gone one is no error.
	RemoveHLSSegment(h SegmentHandle) error
}

// HLSSegment is the task of one segment (TaskHLSSegment).
type HLSSegment struct {
	Segment SegmentHandle `json:"segment"`
	// FileID is the broadcast's HLS recording.
	FileID        string    `json:"file_id"`
	BroadcastID   string    `json:"broadcast_id"`
	BroadcastPush int       `json:"broadcast_push"`
	Duration      float64   `json:"duration"`
	Discontinuity bool      `json:"discontinuity,omitempty"`
	StartTime     time.Time `json:"start_time"`
	EndTime       time.Time `json:"end_time"`
	// PushStart names the recording's objects ({start} of the key template) when this
	// segment is the broadcast's first one stored.
	PushStart   time.Time `json:"push_start"`
	StreamParam string    `json:"stream_param"`
}

// HLSPush is the end of one push's HLS recording: it closed Segments segments,
// numbered from 0.
type HLSPush struct {
	FileID        string    `json:"file_id"`
	App           string    `json:"app"`
	StreamID      string    `json:"stream_id"`
	PushID        string    `json:"push_id"`
	BroadcastID   string    `json:"broadcast_id"`
	BroadcastPush int       `json:"broadcast_push"`
	StartTime     time.Time `json:"start_time"`
	EndTime       time.Time `json:"end_time"`
	Segments      int       `json:"segments"`
	StreamParam   string    `json:"stream_param"`
	NodeID        string    `json:"node_id"`
}

// hlsSegEntry is a stored segment as the Redis state lists it.
type hlsSegEntry struct {
	Push          int       `json:"push"`
	Seq           int       `json:"seq"`
	PushID        string    `json:"push_id"`
	Key           string    `json:"key"`
	Duration      float64   `json:"duration"`
	Discontinuity bool      `json:"discontinuity,omitempty"`
	Size          int64     `json:"size"`
	StartTime     time.Time `json:"start_time"`
	EndTime       time.Time `json:"end_time"`
}

// hlsKeys are the Redis keys of a broadcast's HLS recording; the hash tag keeps them
// in one cluster slot.
type hlsKeys struct{ meta, segs, pushes string }

func hlsKeysOf(broadcastID string) hlsKeys {
	p := "livetape:{hlsrec:" + broadcastID + "}:"
	return hlsKeys{meta: p + "meta", segs: p + "segs", pushes: p + "pushes"}
}

// segField orders the segments of a broadcast by push, then number.
func segField(push, seq int) string { return fmt.Sprintf("%06d:%09d", push, seq) }

// segmentObjectName is a segment's object name within the recording's folder: the
// pushes of a broadcast each number their segments from 0.
func segmentObjectName(push, seq int) string {
	return "p" + strconv.Itoa(push) + "-" + hls.SegmentName(seq)
}

// maxBroadcastID bounds broadcast ids, which name Redis keys, task ids and file ids.
const maxBroadcastID = 200

// validBroadcastID keeps a broadcast id usable in keys, task ids and file ids.
func validBroadcastID(id string) error {
	if id == "" || len(id) > maxBroadcastID {
		return fmt.Errorf("broadcast id %.40q: want 1 to %d characters", id, maxBroadcastID)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("broadcast id %.40q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// EnqueueHLSSegment queues the upload of a segment this node recorded and closed. Its
// task id derives from the segment, so enqueueing it again is harmless.
func (q *Queue) EnqueueHLSSegment(ctx context.Context, s HLSSegment) error {
	if err := validBroadcastID(s.BroadcastID); err != nil {
		return fmt.Errorf("jobs: hls segment: %w", err)
	}
	s.Segment.NodeID = q.cfg.NodeID
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("jobs: hls segment payload: %w", err)
	}
	id := fmt.Sprintf("upload:%s_%s_%d", s.FileID, s.Segment.PushID, s.Segment.Seq)
	return q.Enqueue(ctx, asynq.NewTask(TaskHLSSegment, b), asynq.Queue(NodeQueue(q.cfg.NodeID)),
		asynq.TaskID(id), asynq.MaxRetry(uploadMaxRetry), asynq.Timeout(10*time.Minute))
}

// HLSPushEnded records in Redis that a push's HLS recording ended, and how many
// segments it closed: the finalize waits for that many.
func (q *Queue) HLSPushEnded(ctx context.Context, p HLSPush) error {
	if err := validBroadcastID(p.BroadcastID); err != nil {
		return fmt.Errorf("jobs: hls push end: %w", err)
	}
	if p.BroadcastPush < 1 || p.Segments < 0 {
		return fmt.Errorf("jobs: hls push end: push %d, %d segments", p.BroadcastPush, p.Segments)
	}
	p.NodeID = q.cfg.NodeID
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("jobs: hls push end: %w", err)
	}
	k := hlsKeysOf(p.BroadcastID)
	pipe := q.rdb.TxPipeline()
	pipe.HSet(ctx, k.pushes, strconv.Itoa(p.BroadcastPush), b)
	for _, key := range []string{k.meta, k.segs, k.pushes} {
		pipe.Expire(ctx, key, hlsStateTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("jobs: hls push end %s push %d: %w", p.BroadcastID, p.BroadcastPush, err)
	}
	return nil
}

// EnqueueHLSFinalize queues the end of a broadcast's HLS recording (TaskHLSFinalize):
// call it once the broadcast has ended (its pushes have; serve calls it at the end of
// each push while the reconnect window is 0). It retries until every segment the
// pushes closed is stored. The task id derives from the broadcast and tag (what
// makes a later call new: "" for the end of the broadcast).
func (q *Queue) EnqueueHLSFinalize(ctx context.Context, broadcastID, tag string) error {
	if err := validBroadcastID(broadcastID); err != nil {
		return fmt.Errorf("jobs: hls finalize: %w", err)
	}
	b, _ := json.Marshal(hlsFinalizePayload{BroadcastID: broadcastID})
	id := "hls-final:" + broadcastID
	if tag != "" {
		id += ":" + tag
	}
	return q.Enqueue(ctx, asynq.NewTask(TaskHLSFinalize, b), asynq.TaskID(id), asynq.MaxRetry(uploadMaxRetry),
		asynq.Timeout(10*time.Minute))
}

type hlsFinalizePayload struct {
	BroadcastID string `json:"broadcast_id"`
}

// HLSUploader handles TaskHLSSegment on the node whose spool holds the segments.
type HLSUploader struct {
	Store storage.Store
	Queue *Queue
	Spool SegmentSpool
	// KeyTemplate names the recording's folder as for fragments (catalog.DefaultKeyTemplate
	// when empty).
	KeyTemplate string
	Log         *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (u *HLSUploader) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p HLSSegment
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: hls segment: bad payload: %v: %w", err, asynq.SkipRetry)
	}
	if err := validBroadcastID(p.BroadcastID); err != nil || p.BroadcastPush < 1 || p.Segment.Seq < 0 || p.FileID == "" {
		return fmt.Errorf("jobs: hls segment %s: bad payload (%v): %w", p.Segment, err, asynq.SkipRetry)
	}
	if node := u.Queue.NodeID(); p.Segment.NodeID != node {
		return fmt.Errorf("jobs: hls segment %s: segment of node %q, this is node %q: %w",
			p.Segment, p.Segment.NodeID, node, asynq.SkipRetry)
	}
	rdb := u.Queue.rdb
	k := hlsKeysOf(p.BroadcastID)
	field := segField(p.BroadcastPush, p.Segment.Seq)
	stored, err := rdb.HExists(ctx, k.segs, field).Result()
	if err != nil {
		return fmt.Errorf("jobs: hls segment %s: %w", p.Segment, err)
	}
	if stored {
		// An earlier run stored and listed it, then died before freeing the spool.
		return u.Spool.RemoveHLSSegment(p.Segment)
	}
	path, err := u.Spool.HLSSegment(p.Segment)
	if errors.Is(err, ErrFragmentGone) {
		return fmt.Errorf("jobs: hls segment %s: not in the spool and not stored: %w", p.Segment, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("jobs: hls segment %s: spool: %w", p.Segment, err)
	}
	stem, err := u.stem(ctx, k, &p)
	if err != nil {
		return fmt.Errorf("jobs: hls segment %s: %w", p.Segment, err)
	}
	key := stem + "/" + segmentObjectName(p.BroadcastPush, p.Segment.Seq)
	obj, err := storage.PutFile(ctx, u.Store, key, path, "video/mp2t")
	if err != nil {
		return fmt.Errorf("jobs: hls segment %s: %w", p.Segment, err)
	}
	e := hlsSegEntry{Push: p.BroadcastPush, Seq: p.Segment.Seq, PushID: p.Segment.PushID, Key: key,
		Duration: p.Duration, Discontinuity: p.Discontinuity, Size: obj.Size, StartTime: p.StartTime, EndTime: p.EndTime}
	// The growing playlist first, then the entry: a finalize that sees every entry
	// runs after every such render, so none overwrites the final playlist.
	if err := u.putEventPlaylist(ctx, k, stem, e); err != nil {
		level := slog.LevelWarn
		if ierr := (*storage.IntegrityError)(nil); errors.As(err, &ierr) {
			level = slog.LevelDebug // a concurrent upload stored its render: the next one lists both
		}
		u.Log.Log(ctx, level, "hls: live playlist not updated", "file_id", p.FileID, "err", err)
	}
	b, _ := json.Marshal(e)
	pipe := rdb.TxPipeline()
	pipe.HSet(ctx, k.segs, field, b)
	for _, key := range []string{k.meta, k.segs, k.pushes} {
		pipe.Expire(ctx, key, hlsStateTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("jobs: hls segment %s: list it: %w", p.Segment, err)
	}
	// Storage holds it and the recording lists it: the spool copy can go.
	if err := u.Spool.RemoveHLSSegment(p.Segment); err != nil {
		u.Log.Warn("hls: spool copy not removed", "segment", p.Segment.String(), "err", err)
	}
	u.Log.Debug("hls segment stored", "key", key, "size", obj.Size)
	return nil
}

// stem is the key stem of the broadcast's recording: fixed by the first segment
// stored, whichever node stores it, so that every segment lands in one folder.
func (u *HLSUploader) stem(ctx context.Context, k hlsKeys, p *HLSSegment) (string, error) {
	rec := catalog.Recording{FileID: p.FileID, App: p.Segment.App, StreamID: p.Segment.StreamID, Format: "hls", StartTime: p.PushStart}
	tmpl := u.KeyTemplate
	if tmpl == catalog.DefaultKeyTemplate {
		tmpl = ""
	}
	pipe := u.Queue.rdb.TxPipeline()
	for f, v := range map[string]string{"stem": rec.KeyStem(tmpl), "template": tmpl, "file_id": p.FileID,
		"app": p.Segment.App, "stream_id": p.Segment.StreamID, "stream_param": catalog.PublicStreamParam(p.StreamParam)} {
		pipe.HSetNX(ctx, k.meta, f, v)
	}
	get := pipe.HGet(ctx, k.meta, "stem")
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("recording key: %w", err)
	}
	return get.Val(), nil
}

// putEventPlaylist stores the growing playlist: every stored segment and extra. It is
// a best effort: concurrent uploads may store it in either order, and the next
// upload, or the finalize, renders it again from the listed segments.
func (u *HLSUploader) putEventPlaylist(ctx context.Context, k hlsKeys, stem string, extra hlsSegEntry) error {
	entries, err := loadSegEntries(ctx, u.Queue.rdb, k)
	if err != nil {
		return err
	}
	entries = append(entries, extra)
	sortSegEntries(entries)
	pl := hlsPlaylist(entries)
	pl.Event = true
	b := pl.AppendTo(nil)
	_, err = u.Store.Put(ctx, stem+"/"+hlsPlaylistName, bytes.NewReader(b), int64(len(b)), "application/vnd.apple.mpegurl")
	return err
}

func loadSegEntries(ctx context.Context, rdb redis.UniversalClient, k hlsKeys) ([]hlsSegEntry, error) {
	all, err := rdb.HGetAll(ctx, k.segs).Result()
	if err != nil {
		return nil, fmt.Errorf("hls segments: %w", err)
	}
	entries := make([]hlsSegEntry, 0, len(all)+1)
	for f, v := range all {
		var e hlsSegEntry
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, fmt.Errorf("hls segment %s: %w", f, err)
		}
		entries = append(entries, e)
	}
	sortSegEntries(entries)
	return entries, nil
}

func sortSegEntries(entries []hlsSegEntry) {
	slices.SortFunc(entries, func(a, b hlsSegEntry) int { return cmp.Or(cmp.Compare(a.Push, b.Push), cmp.Compare(a.Seq, b.Seq)) })
}

// hlsPlaylist lists the segments in order: a discontinuity where the segmenter said
// so, and where one push follows another.
func hlsPlaylist(entries []hlsSegEntry) hls.Playlist {
	var pl hls.Playlist
	for i, e := range entries {
		disc := e.Discontinuity || (i > 0 && entries[i-1].Push != e.Push)
		pl.Entries = append(pl.Entries, hls.PlaylistEntry{Seq: i, URI: segmentObjectName(e.Push, e.Seq), Duration: e.Duration, Discontinuity: disc})
	}
	return pl
}

// HLSFinalizer handles TaskHLSFinalize, on any worker.
type HLSFinalizer struct {
	Store   storage.Store
	Catalog *catalog.Catalog
	Queue   *Queue
	// PublicURL is the base of replay URLs (video_url = PublicURL + "/vod/" + key).
	PublicURL string
	Log       *slog.Logger
}

// errHLSNotComplete: the finalize waits for segments or push ends (it is retried).
var errHLSNotComplete = errors.New("hls recording not complete yet")

// ProcessTask implements asynq.Handler.
func (f *HLSFinalizer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p hlsFinalizePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: hls finalize: bad payload: %v: %w", err, asynq.SkipRetry)
	}
	if err := validBroadcastID(p.BroadcastID); err != nil {
		return fmt.Errorf("jobs: hls finalize: %w: %w", err, asynq.SkipRetry)
	}
	rec, err := f.Finalize(ctx, p.BroadcastID)
	if err != nil {
		return fmt.Errorf("jobs: hls finalize %s: %w", p.BroadcastID, err)
	}
	if rec == nil {
		return nil
	}
	return f.Queue.Notify(ctx, Event{
		ChannelID: rec.StreamID, StreamID: rec.StreamID, App: rec.App,
		EventType: EventRecordingReady, EventID: EventID(EventRecordingReady, rec.FileID),
		FileID: rec.FileID, FileFormat: rec.Format, FileSize: rec.Size,
		StartTime: rec.StartTime.Unix(), EndTime: rec.EndTime.Unix(), Duration: rec.Duration,
		VideoID: rec.Key, VideoURL: rec.VideoURL, StreamParam: rec.StreamParam, BroadcastID: rec.BroadcastID,
	})
}

// Finalize writes the VOD playlist of a broadcast's HLS recording and its catalog
// entry, once every ended push's segments are stored; the error wraps
// errHLSNotComplete until then. It returns nil, nil when the broadcast recorded no HLS
// (or less than a second of it). Running it again renders the same.
func (f *HLSFinalizer) Finalize(ctx context.Context, broadcastID string) (*catalog.Recording, error) {
	rdb := f.Queue.rdb
	k := hlsKeysOf(broadcastID)
	meta, err := rdb.HGetAll(ctx, k.meta).Result()
	if err != nil {
		return nil, err
	}
	rawPushes, err := rdb.HGetAll(ctx, k.pushes).Result()
	if err != nil {
		return nil, err
	}
	entries, err := loadSegEntries(ctx, rdb, k)
	if err != nil {
		return nil, err
	}
	pushes := map[int]HLSPush{}
	for field, v := range rawPushes {
		var p HLSPush
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, fmt.Errorf("hls push %s: %w", field, err)
		}
		pushes[p.BroadcastPush] = p
	}
	stored := map[int]int{}
	for _, e := range entries {
		if _, ok := pushes[e.Push]; !ok {
			return nil, fmt.Errorf("push %d has not ended: %w", e.Push, errHLSNotComplete)
		}
		stored[e.Push]++
	}
	for n, p := range pushes {
		if stored[n] < p.Segments {
			return nil, fmt.Errorf("push %d: %d of %d segments stored: %w", n, stored[n], p.Segments, errHLSNotComplete)
		}
	}
	if len(entries) == 0 {
		f.Log.Info("hls finalize: the broadcast recorded no HLS segment", "broadcast_id", broadcastID)
		return nil, nil
	}
	stem := meta["stem"]
	rec := &catalog.Recording{
		FileID: meta["file_id"], App: meta["app"], StreamID: meta["stream_id"], PushID: entries[0].PushID,
		Format: "hls", Type: catalog.TypeFragment, BroadcastID: broadcastID, StreamParam: meta["stream_param"],
		Key: stem + "/" + hlsPlaylistName, Template: meta["template"], CatalogKey: stem + ".json",
		StartTime: entries[0].StartTime, EndTime: entries[0].EndTime,
	}
	for _, e := range entries {
		rec.Objects = append(rec.Objects, e.Key)
		rec.Duration += e.Duration
		rec.Size += e.Size
		if e.StartTime.Before(rec.StartTime) {
			rec.StartTime = e.StartTime
		}
		if e.EndTime.After(rec.EndTime) {
			rec.EndTime = e.EndTime
		}
	}
	rec.NodeID = pushes[entries[0].Push].NodeID // the node of the first push
	if rec.Duration < 1 {
		f.Log.Info("hls finalize: shorter than 1 s, no recording", "broadcast_id", broadcastID, "duration", rec.Duration)
		return nil, nil
	}
	pl := hlsPlaylist(entries)
	pl.VOD = true
	b := pl.AppendTo(nil)
	if _, err := f.Store.Put(ctx, rec.Key, bytes.NewReader(b), int64(len(b)), "application/vnd.apple.mpegurl"); err != nil {
		return nil, fmt.Errorf("store playlist: %w", err)
	}
	rec.Objects = append(rec.Objects, rec.Key)
	rec.Size += int64(len(b))
	rec.VideoURL = strings.TrimSuffix(f.PublicURL, "/") + "/vod/" + rec.Key
	rec.StoredAt = time.Now().UTC()
	if err := f.Catalog.Put(ctx, rec); err != nil {
		return nil, err
	}
	f.Log.Info("hls recording stored", "file_id", rec.FileID, "broadcast_id", broadcastID, "key", rec.Key,
		"pushes", len(pushes), "segments", len(entries), "duration", rec.Duration)
	return rec, nil
}
