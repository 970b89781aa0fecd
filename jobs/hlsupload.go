package jobs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
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
// the pushes ended (with how many segments each closed). Every upload lists its
// segment, then renders the EVENT playlist of what is listed so far, under the
// broadcast's lock so that the playlist in the bucket only grows; once every segment
// of every ended push is stored, TaskHLSFinalize renders the VOD playlist from the
// same state (the authoritative render), catalogs the recording and sends event 100,
// once. A Redis that lost the state (the embedded one after a restart) gets it back
// from the bucket's playlist.
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
type hlsKeys struct{ meta, segs, pushes, lock string }

func hlsKeysOf(broadcastID string) hlsKeys {
	p := "livetape:{hlsrec:" + broadcastID + "}:"
	return hlsKeys{meta: p + "meta", segs: p + "segs", pushes: p + "pushes", lock: p + "lock"}
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
		// An earlier run stored and listed it, then died before freeing the spool
		// (and maybe before rendering the playlist).
		if stem, err := rdb.HGet(ctx, k.meta, "stem").Result(); err == nil {
			u.renderLive(ctx, k, stem, p.FileID)
		}
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
	b, _ := json.Marshal(e)
	pipe := rdb.TxPipeline()
	pipe.HSet(ctx, k.segs, field, b)
	for _, key := range []string{k.meta, k.segs, k.pushes} {
		pipe.Expire(ctx, key, hlsStateTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("jobs: hls segment %s: list it: %w", p.Segment, err)
	}
	u.renderLive(ctx, k, stem, p.FileID)
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
	return hlsState{u.Store, u.Queue.rdb, u.Log}.ensure(ctx, k, rec, u.KeyTemplate, p.StreamParam)
}

// hlsState is the Redis state of HLS recordings, with the bucket to rebuild it from.
type hlsState struct {
	store storage.Store
	rdb   redis.UniversalClient
	log   *slog.Logger
}

// ensure fixes the recording's key stem (the first to set it wins; rec and template
// name it) and returns it. When the state is new, which is also what a Redis that
// lost its data (restarted without persistence, the embedded one after a restart)
// looks like, what the bucket's playlist lists is imported.
func (s hlsState) ensure(ctx context.Context, k hlsKeys, rec catalog.Recording, template, streamParam string) (string, error) {
	if template == catalog.DefaultKeyTemplate {
		template = ""
	}
	pipe := s.rdb.TxPipeline()
	var fresh *redis.BoolCmd
	for f, v := range map[string]string{"stem": rec.KeyStem(template), "template": template, "file_id": rec.FileID,
		"app": rec.App, "stream_id": rec.StreamID, "stream_param": catalog.PublicStreamParam(streamParam)} {
		cmd := pipe.HSetNX(ctx, k.meta, f, v)
		if f == "stem" {
			fresh = cmd
		}
	}
	get := pipe.HGet(ctx, k.meta, "stem")
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("recording key: %w", err)
	}
	if fresh.Val() {
		if err := s.importPlaylist(ctx, k, get.Val()); err != nil {
			s.rdb.HDel(ctx, k.meta, "stem") // the next attempt imports again
			return "", fmt.Errorf("recording state from the bucket: %w", err)
		}
	}
	return get.Val(), nil
}

// maxPlaylistSize bounds a playlist read back from the bucket before it is parsed
// (a six-hour broadcast in 4 s segments is about 200 KiB).
const maxPlaylistSize = 16 << 20

// importPlaylist lists in Redis the segments the bucket's playlist of the recording
// names (a state lost with its Redis), and marks the pushes they belong to as ended
// with those segments, unless their end is recorded: a push still live records its
// end again when it ends.
func (s hlsState) importPlaylist(ctx context.Context, k hlsKeys, stem string) error {
	rd, obj, err := s.store.Open(ctx, stem+"/"+hlsPlaylistName, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer rd.Close()
	if obj.Size > maxPlaylistSize {
		return fmt.Errorf("playlist of %d bytes: more than %d", obj.Size, maxPlaylistSize)
	}
	listed, err := hls.ParsePlaylist(io.LimitReader(rd, maxPlaylistSize))
	if err != nil {
		return err
	}
	objs, err := s.store.List(ctx, stem+"/")
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	pipe := s.rdb.TxPipeline()
	perPush := map[int]int{}
	for _, l := range listed {
		push, seq, ok := parseSegmentObjectName(l.URI)
		key := stem + "/" + l.URI
		size, stored := sizes[key]
		if !ok || !stored {
			continue
		}
		b, _ := json.Marshal(hlsSegEntry{Push: push, Seq: seq, Key: key, Duration: l.Duration, Discontinuity: l.Discontinuity, Size: size})
		pipe.HSetNX(ctx, k.segs, segField(push, seq), b)
		perPush[push] = max(perPush[push], seq+1)
	}
	for push, n := range perPush {
		b, _ := json.Marshal(HLSPush{BroadcastPush: push, Segments: n})
		pipe.HSetNX(ctx, k.pushes, strconv.Itoa(push), b)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	if len(perPush) > 0 {
		s.log.Warn("hls: recording state rebuilt from the bucket's playlist (Redis lost it)", "key", stem, "segments", len(listed))
	}
	return nil
}

// parseSegmentObjectName reads segmentObjectName.
func parseSegmentObjectName(name string) (push, seq int, ok bool) {
	p, rest, found := strings.Cut(strings.TrimPrefix(name, "p"), "-")
	if !found || !strings.HasPrefix(name, "p") {
		return 0, 0, false
	}
	push, err := strconv.Atoi(p)
	if err != nil || push < 1 || strconv.Itoa(push) != p {
		return 0, 0, false
	}
	seq, ok = hls.ParseSegmentName(rest)
	return push, seq, ok
}

// renderLive stores the growing (EVENT) playlist of every segment listed so far.
// Renders take the broadcast's lock, so each lists at least what the one before it
// did: the playlist in the bucket only grows, and a render never lands after the
// final one unless a segment came after it (the recording grows again). A failure is
// logged: the next segment, or the finalize, renders again.
func (u *HLSUploader) renderLive(ctx context.Context, k hlsKeys, stem, fileID string) {
	st := hlsState{u.Store, u.Queue.rdb, u.Log}
	err := st.locked(ctx, k, func() error {
		entries, err := loadSegEntries(ctx, u.Queue.rdb, k)
		if err != nil {
			return err
		}
		final, err := u.Queue.rdb.HGet(ctx, k.meta, "final").Int()
		if err == nil && final >= len(entries) {
			return nil // the final playlist lists them all
		}
		pl := hlsPlaylist(entries)
		pl.Event = true
		b := pl.AppendTo(nil)
		if _, err := u.Store.Put(ctx, stem+"/"+hlsPlaylistName, bytes.NewReader(b), int64(len(b)), "application/vnd.apple.mpegurl"); err != nil {
			return err
		}
		return u.Queue.rdb.HDel(ctx, k.meta, "final").Err()
	})
	if err != nil {
		u.Log.Warn("hls: live playlist not updated", "file_id", fileID, "err", err)
	}
}

// hlsLockTTL bounds how long a dead holder keeps a broadcast's playlist locked.
const hlsLockTTL = 30 * time.Second

var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// locked runs fn holding the lock of the broadcast's playlist, so that its renders
// and stores follow one another.
func (s hlsState) locked(ctx context.Context, k hlsKeys, fn func() error) error {
	token := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(rand.Uint64(), 36)
	wait := time.NewTicker(10 * time.Millisecond)
	defer wait.Stop()
	for {
		ok, err := s.rdb.SetNX(ctx, k.lock, token, hlsLockTTL).Result()
		if err != nil {
			return fmt.Errorf("playlist lock: %w", err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("playlist lock: %w", ctx.Err())
		case <-wait.C:
		}
	}
	defer unlockScript.Run(context.WithoutCancel(ctx), s.rdb, []string{k.lock}, token)
	return fn()
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
	// KeyTemplate names the recording's folder, as HLSUploader's: used when the Redis
	// state lost the name.
	KeyTemplate string
	// Finalized, when set, is told of every broadcast whose finalize succeeded.
	Finalized func(broadcastID string)
	Log       *slog.Logger
}

// load reads the Redis state of a broadcast's HLS recording.
func (f *HLSFinalizer) load(ctx context.Context, k hlsKeys) (map[string]string, map[int]HLSPush, []hlsSegEntry, error) {
	rdb := f.Queue.rdb
	meta, err := rdb.HGetAll(ctx, k.meta).Result()
	if err != nil {
		return nil, nil, nil, err
	}
	rawPushes, err := rdb.HGetAll(ctx, k.pushes).Result()
	if err != nil {
		return nil, nil, nil, err
	}
	entries, err := loadSegEntries(ctx, rdb, k)
	if err != nil {
		return nil, nil, nil, err
	}
	pushes := map[int]HLSPush{}
	for field, v := range rawPushes {
		var p HLSPush
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, nil, nil, fmt.Errorf("hls push %s: %w", field, err)
		}
		pushes[p.BroadcastPush] = p
	}
	return meta, pushes, entries, nil
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
	if rec != nil {
		err = f.notify(ctx, rec)
	}
	if err == nil && f.Finalized != nil {
		f.Finalized(p.BroadcastID)
	}
	return err
}

// notify sends event 100 of the recording; its id derives from the file id, so a
// finalize run again sends none.
func (f *HLSFinalizer) notify(ctx context.Context, rec *catalog.Recording) error {
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
	k := hlsKeysOf(broadcastID)
	meta, pushes, entries, err := f.load(ctx, k)
	if err != nil {
		return nil, err
	}
	if meta["stem"] == "" && len(pushes) > 0 {
		// Pushes ended, but no segment stored since Redis lost its data (a restart
		// of the embedded one): rebuild the state from the bucket, named as the
		// broadcast's first push names it.
		first := slices.Min(slices.Collect(maps.Keys(pushes)))
		p := pushes[first]
		if p.FileID == "" || p.App == "" || p.StreamID == "" {
			return nil, fmt.Errorf("push %d names no recording: %w", first, errHLSNotComplete)
		}
		rec := catalog.Recording{FileID: p.FileID, App: p.App, StreamID: p.StreamID, Format: "hls", StartTime: p.StartTime}
		if _, err := (hlsState{f.Store, f.Queue.rdb, f.Log}).ensure(ctx, k, rec, f.KeyTemplate, p.StreamParam); err != nil {
			return nil, err
		}
		if meta, pushes, entries, err = f.load(ctx, k); err != nil {
			return nil, err
		}
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
		FileID: meta["file_id"], App: meta["app"], StreamID: meta["stream_id"],
		Format: "hls", Type: catalog.TypeFragment, BroadcastID: broadcastID, StreamParam: meta["stream_param"],
		Key: stem + "/" + hlsPlaylistName, Template: meta["template"], CatalogKey: stem + ".json",
	}
	for _, e := range entries {
		if rec.PushID == "" {
			rec.PushID = e.PushID // the first push's (entries rebuilt from the bucket have none)
		}
		rec.Objects = append(rec.Objects, e.Key)
		rec.Duration += e.Duration
		rec.Size += e.Size
		// Entries rebuilt from the bucket have no times.
		if !e.StartTime.IsZero() && (rec.StartTime.IsZero() || e.StartTime.Before(rec.StartTime)) {
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
	// Under the playlist's lock, and marked as listing len(entries) segments: a live
	// render that would list no more does not replace it.
	err = hlsState{f.Store, f.Queue.rdb, f.Log}.locked(ctx, k, func() error {
		if n, err := f.Queue.rdb.HLen(ctx, k.segs).Result(); err != nil || n != int64(len(entries)) {
			return fmt.Errorf("segments changed while finalizing (%d, %v): %w", n, err, errHLSNotComplete)
		}
		if _, err := f.Store.Put(ctx, rec.Key, bytes.NewReader(b), int64(len(b)), "application/vnd.apple.mpegurl"); err != nil {
			return fmt.Errorf("store playlist: %w", err)
		}
		return f.Queue.rdb.HSet(ctx, k.meta, "final", len(entries)).Err()
	})
	if err != nil {
		return nil, err
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
