package jobs

import (
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

	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// A broadcast is the pushes of one app/stream id separated by less than the reconnect
// window. Its live state is kept in the queue's Redis, so that a reconnect landing on
// another node continues it; every change is one Lua script (atomic). The catalog
// entry (catalog.Broadcast) is written from that state by TaskBroadcastSave.
//
// Keys, after broadcastPrefix:
//
//	s:{app}/{stream_id}     string  the stream's current broadcast id
//	b:{id}                  hash    app, stream_id, state (live|ended), pushes (count),
//	                                started and last_end (UNIX ms), window_ms and stitch (of
//	                                the last push), rev, replay
//	b:{id}:p                hash    push number -> "push_id|start ms|end ms" (end empty while live)
//	b:{id}:alive            zset    push id -> lease expiry (UNIX ms) of the pushes not ended:
//	                                the node of a push renews its lease while it is live, so
//	                                a push whose end was never recorded (its node died, Redis
//	                                failed at its end) stops counting as live when the lease
//	                                runs out, and is taken to have ended then
//	b:{id}:recs             zset    file ids of the stored fragments, by start time
//	b:{id}:pending          set     MP4 fragments handed to the upload queue, not yet stored,
//	                                and "recording:{push_id}" while a push is recorded:
//	                                the automatic stitch waits until it is empty
//	b:{id}:lock             string  held while the catalog entry is written
//
// An ended broadcast's keys expire after broadcastKeep; its catalog entry stays.
const broadcastPrefix = "livetape:broadcast:"

// Broadcast task types. They are small bookkeeping over Redis and the catalog, on the
// shared QueueCallbacks (light work that goes first), except the stitch, which only
// queues a TaskStitch once the fragments are stored.
const (
	// TaskBroadcastEnd ends a broadcast if no push joined it since the push that
	// scheduled it ended; delayed by the reconnect window.
	TaskBroadcastEnd = "broadcast:end"
	// TaskBroadcastSave writes a broadcast's catalog entry from its state in Redis.
	TaskBroadcastSave = "broadcast:save"
	// TaskBroadcastStitch queues the stitch of an ended broadcast's MP4 fragments
	// once every one of them is stored.
	TaskBroadcastStitch = "broadcast:stitch"
)

// BroadcastLease is how long a push counts as live without its node renewing it;
// BroadcastLeaseRenew is how often a node renews the leases of its live pushes.
const (
	BroadcastLease      = time.Minute
	BroadcastLeaseRenew = BroadcastLease / 4
)

// broadcastKeep is how long an ended broadcast's state stays in Redis: late uploads
// and the stitch still update it meanwhile.
const broadcastKeep = 7 * 24 * time.Hour

// broadcastStitchMaxRetry bounds the wait of the automatic stitch for fragments still
// uploading (retries back off up to 10 minutes: about three days).
const broadcastStitchMaxRetry = 500

// BroadcastPush is a push starting, as the broadcast tracker needs it.
type BroadcastPush struct {
	App, StreamID, PushID string
	Started               time.Time
	// Window is the push's reconnect window (0: the push is a broadcast of its own).
	Window time.Duration
	// Stitch asks for the broadcast's MP4 recordings to be stitched when it ends.
	Stitch bool
}

// BroadcastHook is called when a broadcast has ended, with its final catalog entry.
// It runs in TaskBroadcastEnd: an error retries the task, which calls every hook
// again, so a hook must be idempotent.
type BroadcastHook func(ctx context.Context, b catalog.Broadcast) error

// Broadcasts tracks broadcasts: Begin and End at each push's start and end (any node),
// and the handlers of the broadcast tasks.
type Broadcasts struct {
	q   *Queue
	cat *catalog.Catalog
	log *slog.Logger
	// hooks run, in order, when a broadcast ended (after its event is queued).
	hooks []BroadcastHook
}

// NewBroadcasts returns the tracker of q's Redis, writing entries to cat.
func NewBroadcasts(q *Queue, cat *catalog.Catalog, log *slog.Logger) *Broadcasts {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broadcasts{q: q, cat: cat, log: log.With("component", "broadcasts")}
}

// OnEnded adds a hook called when a broadcast ends. Call it before Register.
func (b *Broadcasts) OnEnded(h BroadcastHook) { b.hooks = append(b.hooks, h) }

// Register routes the broadcast tasks to b. Call it before Queue.Start.
func (b *Broadcasts) Register() {
	b.q.Register(TaskBroadcastEnd, asynq.HandlerFunc(b.handleEnd))
	b.q.Register(TaskBroadcastSave, asynq.HandlerFunc(b.handleSave))
	b.q.Register(TaskBroadcastStitch, asynq.HandlerFunc(b.handleStitch))
}

// beginScript assigns a starting push to its stream's broadcast: the current one if it
// is live and the push starts within its window after the last push ended, or while a
// push of it still holds a lease, else a new one named newID.
// ARGV: prefix, app, stream id, new id, push id, now ms, window ms, stitch (0|1), lease ms.
var beginScript = redis.NewScript(`
local p, app, sid, newid, pushid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, lease = tonumber(ARGV[6]), tonumber(ARGV[6]) + tonumber(ARGV[9])
local skey = p .. "s:" .. app .. "/" .. sid
local cur = redis.call("GET", skey)
if cur then
  local b = p .. "b:" .. cur
  local st = redis.call("HMGET", b, "state", "last_end", "window_ms")
  local last, w = tonumber(st[2]) or 0, tonumber(st[3]) or 0
  if st[1] == "live" and w > 0 then
    local live = redis.call("ZCOUNT", b .. ":alive", "(" .. ARGV[6], "+inf")
    local leased = redis.call("ZRANGE", b .. ":alive", -1, -1, "WITHSCORES")
    if leased[2] and tonumber(leased[2]) > last then last = tonumber(leased[2]) end
    if live > 0 or now - last < w then
      local n = redis.call("HINCRBY", b, "pushes", 1)
      redis.call("HINCRBY", b, "rev", 1)
      redis.call("HSET", b, "window_ms", ARGV[7], "stitch", ARGV[8])
      redis.call("HSET", b .. ":p", n, pushid .. "|" .. ARGV[6] .. "|")
      redis.call("ZADD", b .. ":alive", lease, pushid)
      return {cur, n}
    end
  end
end
redis.call("SET", skey, newid)
local b = p .. "b:" .. newid
redis.call("HSET", b, "app", app, "stream_id", sid, "state", "live", "pushes", 1, "last_end", 0,
  "window_ms", ARGV[7], "stitch", ARGV[8], "started", ARGV[6], "rev", 1)
redis.call("HSET", b .. ":p", 1, pushid .. "|" .. ARGV[6] .. "|")
redis.call("ZADD", b .. ":alive", lease, pushid)
return {newid, 1}
`)

// endScript records the end of a push (once) and returns the broadcast's push count
// and window, or {0, 0} for an unknown broadcast. ARGV: prefix, id, push id, end ms.
var endScript = redis.NewScript(`
local b = ARGV[1] .. "b:" .. ARGV[2]
if redis.call("EXISTS", b) == 0 then return {0, 0} end
local pushes = redis.call("HGETALL", b .. ":p")
for i = 1, #pushes, 2 do
  local v = pushes[i + 1]
  if string.sub(v, 1, #ARGV[3] + 1) == ARGV[3] .. "|" and string.sub(v, -1) == "|" then
    redis.call("HSET", b .. ":p", pushes[i], v .. ARGV[4])
    if tonumber(ARGV[4]) > (tonumber(redis.call("HGET", b, "last_end")) or 0) then
      redis.call("HSET", b, "last_end", ARGV[4])
    end
    redis.call("HINCRBY", b, "rev", 1)
  end
end
redis.call("ZREM", b .. ":alive", ARGV[3])
return {tonumber(redis.call("HGET", b, "pushes")), tonumber(redis.call("HGET", b, "window_ms")) or 0}
`)

// finishScript ends a broadcast if its push count is still the one the end task was
// scheduled at and no push holds a lease: 1 when it ended it now, 2 when it had ended
// already (a retried task), 0 when a push joined since or is live (or the broadcast is
// unknown). Pushes whose lease ran out without an end end at their lease's expiry.
// ARGV: prefix, id, push count, keep seconds, now ms.
var finishScript = redis.NewScript(`
local p, id = ARGV[1], ARGV[2]
local b = p .. "b:" .. id
local st = redis.call("HMGET", b, "state", "pushes", "app", "stream_id")
if not st[1] or st[2] ~= ARGV[3] then return 0 end
if st[1] == "ended" then return 2 end
if redis.call("ZCOUNT", b .. ":alive", "(" .. ARGV[5], "+inf") > 0 then return 0 end
local lost = redis.call("ZRANGE", b .. ":alive", 0, -1, "WITHSCORES")
local pushes = redis.call("HGETALL", b .. ":p")
for i = 1, #lost, 2 do
  for j = 1, #pushes, 2 do
    local v = pushes[j + 1]
    if string.sub(v, 1, #lost[i] + 1) == lost[i] .. "|" and string.sub(v, -1) == "|" then
      redis.call("HSET", b .. ":p", pushes[j], v .. lost[i + 1])
      if tonumber(lost[i + 1]) > (tonumber(redis.call("HGET", b, "last_end")) or 0) then
        redis.call("HSET", b, "last_end", lost[i + 1])
      end
    end
  end
end
redis.call("DEL", b .. ":alive")
redis.call("HSET", b, "state", "ended")
redis.call("HINCRBY", b, "rev", 1)
for _, k in ipairs({b, b .. ":p", b .. ":recs", b .. ":pending"}) do redis.call("EXPIRE", k, ARGV[4]) end
local skey = p .. "s:" .. st[3] .. "/" .. st[4]
if redis.call("GET", skey) == id then redis.call("DEL", skey) end
return 1
`)

// renewScript extends the leases of pushes still live (ZADD XX: an ended push is not
// brought back). ARGV: prefix, expiry ms, then id, push id pairs.
var renewScript = redis.NewScript(`
for i = 3, #ARGV, 2 do
  redis.call("ZADD", ARGV[1] .. "b:" .. ARGV[i] .. ":alive", "XX", ARGV[2], ARGV[i + 1])
end
return 1
`)

// storedScript moves a stored fragment from pending to the recordings. ARGV: prefix,
// id, file id, start (UNIX ms). Returns 0 for an unknown (expired) broadcast.
var storedScript = redis.NewScript(`
local b = ARGV[1] .. "b:" .. ARGV[2]
if redis.call("EXISTS", b) == 0 then return 0 end
redis.call("SREM", b .. ":pending", ARGV[3])
redis.call("ZADD", b .. ":recs", ARGV[4], ARGV[3])
redis.call("HINCRBY", b, "rev", 1)
local ttl = redis.call("TTL", b)
if ttl > 0 then redis.call("EXPIRE", b .. ":recs", ttl) end
return 1
`)

// replayScript names the stitched replay of a broadcast. ARGV: prefix, id, file id.
var replayScript = redis.NewScript(`
local b = ARGV[1] .. "b:" .. ARGV[2]
if redis.call("EXISTS", b) == 0 then return 0 end
redis.call("HSET", b, "replay", ARGV[3])
redis.call("HINCRBY", b, "rev", 1)
return 1
`)

// unlockScript releases a lock if it is still ours. KEYS: the lock. ARGV: token.
var broadcastUnlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
`)

// Begin assigns a starting push to a broadcast (see beginScript) and returns its id
// and the push's number in it. A new broadcast is named after its first push:
// {stream_id}_{push_id}. The caller starts a broadcast of its own when Begin fails
// (Redis unreachable): a push is never refused for want of a broadcast.
func (b *Broadcasts) Begin(ctx context.Context, p BroadcastPush) (id string, n int, err error) {
	stitch := "0"
	if p.Stitch {
		stitch = "1"
	}
	res, err := beginScript.Run(ctx, b.q.rdb, nil, broadcastPrefix, p.App, p.StreamID, p.StreamID+"_"+p.PushID,
		p.PushID, p.Started.UnixMilli(), p.Window.Milliseconds(), stitch, BroadcastLease.Milliseconds()).Slice()
	if err != nil {
		return "", 0, fmt.Errorf("jobs: broadcast of push %s of %s/%s: %w", p.PushID, p.App, p.StreamID, err)
	}
	id, _ = res[0].(string)
	n64, _ := res[1].(int64)
	b.queueSave(ctx, id)
	return id, int(n64), nil
}

// End records the end of push pushID of broadcast id and schedules the end of the
// broadcast after its reconnect window (at once with no window): TaskBroadcastEnd, whose
// id names the push count, so that a push joining meanwhile makes it do nothing and
// its own end schedules the next.
func (b *Broadcasts) End(ctx context.Context, id, pushID string, ended time.Time) error {
	res, err := endScript.Run(ctx, b.q.rdb, nil, broadcastPrefix, id, pushID, ended.UnixMilli()).Int64Slice()
	if err != nil {
		return fmt.Errorf("jobs: end push %s of broadcast %s: %w", pushID, id, err)
	}
	pushes, window := res[0], time.Duration(res[1])*time.Millisecond
	if pushes == 0 {
		return fmt.Errorf("jobs: end push %s: broadcast %s unknown (it began while Redis was unreachable, or expired)", pushID, id)
	}
	payload, _ := json.Marshal(broadcastTask{BroadcastID: id, Pushes: int(pushes)})
	err = b.q.Enqueue(ctx, asynq.NewTask(TaskBroadcastEnd, payload), asynq.Queue(QueueCallbacks),
		asynq.TaskID(fmt.Sprintf("broadcast-end:%s:%d", id, pushes)), asynq.ProcessIn(window), asynq.MaxRetry(uploadMaxRetry))
	if err != nil {
		return fmt.Errorf("jobs: schedule the end of broadcast %s: %w", id, err)
	}
	b.queueSave(ctx, id)
	return nil
}

// broadcastTask is the payload of the broadcast tasks.
type broadcastTask struct {
	BroadcastID string `json:"broadcast_id"`
	// Pushes is, for TaskBroadcastEnd, the push count when it was scheduled.
	Pushes int `json:"pushes,omitempty"`
}

// queueSave queues the write of a broadcast's catalog entry. A failure is logged: the
// next change of the broadcast, or its end, writes the entry again.
func (b *Broadcasts) queueSave(ctx context.Context, id string) { b.q.queueBroadcastSave(ctx, id) }

func (q *Queue) queueBroadcastSave(ctx context.Context, id string) {
	payload, _ := json.Marshal(broadcastTask{BroadcastID: id})
	// No task id: every change needs a write after it, and writes are serialized by
	// a lock, so a save queued twice writes twice, harmlessly.
	if err := q.Enqueue(ctx, asynq.NewTask(TaskBroadcastSave, payload), asynq.Queue(QueueCallbacks), asynq.MaxRetry(50)); err != nil {
		q.log.Warn("broadcast entry not queued for writing", "broadcast_id", id, "err", err)
	}
}

// broadcastFragmentPending notes an MP4 fragment of a broadcast handed to the upload
// queue: the automatic stitch waits until it is stored.
func (q *Queue) broadcastFragmentPending(ctx context.Context, rec Recording) error {
	if rec.BroadcastID == "" || rec.Format != "mp4" {
		return nil
	}
	key := broadcastPrefix + "b:" + rec.BroadcastID + ":pending"
	tx := q.rdb.TxPipeline()
	tx.SAdd(ctx, key, rec.FileID)
	// A broadcast that began without Redis has no end to expire it.
	tx.Expire(ctx, key, broadcastKeep)
	if _, err := tx.Exec(ctx); err != nil {
		return fmt.Errorf("jobs: note fragment %s of broadcast %s: %w", rec.FileID, rec.BroadcastID, err)
	}
	return nil
}

// BroadcastPushRecording notes that a push of a broadcast is being recorded, or that
// its last fragment has been handed to the upload queue: the automatic stitch waits for
// the fragments the recorder is still finalizing too, not only for those queued. A node
// that dies mid-recording clears the note when it recovers its spool at restart; one
// that never comes back leaves it until the broadcast's keys expire, and that stitch
// fails, naming the push.
func (q *Queue) BroadcastPushRecording(ctx context.Context, broadcastID, pushID string, recording bool) error {
	if broadcastID == "" {
		return nil
	}
	pendingKey := broadcastPrefix + "b:" + broadcastID + ":pending"
	member := pushRecordingMember + pushID
	tx := q.rdb.TxPipeline()
	if recording {
		tx.SAdd(ctx, pendingKey, member)
		tx.Expire(ctx, pendingKey, broadcastKeep)
	} else {
		tx.SRem(ctx, pendingKey, member)
	}
	if _, err := tx.Exec(ctx); err != nil {
		return fmt.Errorf("jobs: note the recording of push %s of broadcast %s: %w", pushID, broadcastID, err)
	}
	return nil
}

// pushRecordingMember prefixes the pending-set member of a push being recorded (file
// ids never contain a colon).
const pushRecordingMember = "recording:"

// broadcastFragmentStored adds a stored fragment to its broadcast.
func (q *Queue) broadcastFragmentStored(ctx context.Context, rec *Recording) error {
	if rec.BroadcastID == "" {
		return nil
	}
	n, err := storedScript.Run(ctx, q.rdb, nil, broadcastPrefix, rec.BroadcastID, rec.FileID, rec.StartTime.UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("jobs: add fragment %s to broadcast %s: %w", rec.FileID, rec.BroadcastID, err)
	}
	if n == 1 {
		q.queueBroadcastSave(ctx, rec.BroadcastID)
	}
	return nil
}

// broadcastReplayStored names the stitched replay of a broadcast in its entry: through
// Redis while the broadcast is kept there, else in the catalog entry directly.
func (q *Queue) broadcastReplayStored(ctx context.Context, cat *catalog.Catalog, id, fileID string) error {
	n, err := replayScript.Run(ctx, q.rdb, nil, broadcastPrefix, id, fileID).Int()
	if err != nil {
		return fmt.Errorf("jobs: name the replay of broadcast %s: %w", id, err)
	}
	if n == 1 {
		q.queueBroadcastSave(ctx, id)
		return nil
	}
	entry, err := cat.GetBroadcast(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // a broadcast_id the catalog never had
	}
	if err != nil {
		return err
	}
	if entry.ReplayFileID == fileID {
		return nil
	}
	entry.ReplayFileID, entry.Rev = fileID, entry.Rev+1
	return cat.PutBroadcast(ctx, entry)
}

// state reads a broadcast from Redis as its catalog entry; nil when Redis does not
// know it (never began there, or expired).
func (b *Broadcasts) state(ctx context.Context, id string) (*catalog.Broadcast, error) {
	key := broadcastPrefix + "b:" + id
	pipe := b.q.rdb.Pipeline()
	h := pipe.HGetAll(ctx, key)
	pushes := pipe.HGetAll(ctx, key+":p")
	recs := pipe.ZRange(ctx, key+":recs", 0, -1)
	alive := pipe.ZRangeWithScores(ctx, key+":alive", 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read broadcast %s: %w", id, err)
	}
	v := h.Val()
	if len(v) == 0 {
		return nil, nil
	}
	ms := func(s string) time.Time {
		n, _ := strconv.ParseInt(s, 10, 64)
		if n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n).UTC()
	}
	rev, _ := strconv.ParseInt(v["rev"], 10, 64)
	window, _ := strconv.ParseInt(v["window_ms"], 10, 64)
	out := &catalog.Broadcast{
		BroadcastID: id, App: v["app"], StreamID: v["stream_id"], State: v["state"],
		StartTime: ms(v["started"]), EndTime: ms(v["last_end"]), ReplayFileID: v["replay"],
		ReconnectWindow: float64(window) / 1000, Stitch: v["stitch"] == "1", Rev: rev,
		Recordings: recs.Val(), Pushes: []catalog.BroadcastPush{},
	}
	if out.Recordings == nil {
		out.Recordings = []string{}
	}
	nums := make([]int, 0, len(pushes.Val()))
	for k := range pushes.Val() {
		n, _ := strconv.Atoi(k)
		nums = append(nums, n)
	}
	slices.Sort(nums)
	now := time.Now()
	lease := map[string]time.Time{}
	for _, z := range alive.Val() {
		lease[z.Member.(string)] = time.UnixMilli(int64(z.Score)).UTC()
	}
	var pushed time.Duration
	for _, n := range nums {
		parts := strings.SplitN(pushes.Val()[strconv.Itoa(n)], "|", 3)
		if len(parts) != 3 {
			continue
		}
		bp := catalog.BroadcastPush{PushID: parts[0], StartTime: ms(parts[1]), EndTime: ms(parts[2])}
		if l, ok := lease[bp.PushID]; ok && bp.EndTime.IsZero() && l.Before(now) {
			bp.EndTime = l // its end was never recorded: it ended when its lease ran out
		}
		end := bp.EndTime
		if end.IsZero() {
			end = now
		}
		pushed += end.Sub(bp.StartTime)
		out.Pushes = append(out.Pushes, bp)
	}
	out.Duration = pushed.Seconds()
	return out, nil
}

// save writes a broadcast's catalog entry from its state in Redis, under a lock so
// that of two writes the later reads the later state; nil, nil when Redis does not know
// the broadcast.
func (b *Broadcasts) save(ctx context.Context, id string) (*catalog.Broadcast, error) {
	lock := broadcastPrefix + "b:" + id + ":lock"
	token := strconv.FormatInt(time.Now().UnixNano(), 36) + b.q.NodeID()
	ok, err := b.q.rdb.SetNX(ctx, lock, token, time.Minute).Result()
	if err != nil {
		return nil, fmt.Errorf("lock broadcast %s: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("broadcast %s is being written by another task; retried", id)
	}
	defer broadcastUnlockScript.Run(context.WithoutCancel(ctx), b.q.rdb, []string{lock}, token)
	entry, err := b.state(ctx, id)
	if err != nil || entry == nil {
		return nil, err
	}
	if err := b.cat.PutBroadcast(ctx, entry); err != nil {
		return nil, err
	}
	return entry, nil
}

func (b *Broadcasts) handleSave(ctx context.Context, t *asynq.Task) error {
	var p broadcastTask
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BroadcastID == "" {
		return fmt.Errorf("jobs: broadcast save: bad payload (%v): %w", err, asynq.SkipRetry)
	}
	if _, err := b.save(ctx, p.BroadcastID); err != nil {
		return fmt.Errorf("jobs: broadcast save %s: %w", p.BroadcastID, err)
	}
	return nil
}

// handleEnd ends a broadcast whose last push ended a reconnect window ago (see
// finishScript), then writes its final entry, sends EventBroadcastEnded, queues the
// automatic stitch when asked, and calls the hooks. A retry after a failure half-way
// finds it ended (2) and does what is left again; every step is idempotent.
func (b *Broadcasts) handleEnd(ctx context.Context, t *asynq.Task) error {
	var p broadcastTask
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BroadcastID == "" || p.Pushes < 1 {
		return fmt.Errorf("jobs: broadcast end: bad payload (%v): %w", err, asynq.SkipRetry)
	}
	log := b.log.With("broadcast_id", p.BroadcastID)
	r, err := finishScript.Run(ctx, b.q.rdb, nil, broadcastPrefix, p.BroadcastID, strconv.Itoa(p.Pushes),
		int64(broadcastKeep/time.Second), time.Now().UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("jobs: broadcast end %s: %w", p.BroadcastID, err)
	}
	if r == 0 {
		log.Debug("broadcast goes on: a push joined it", "pushes_when_scheduled", p.Pushes)
		return nil
	}
	entry, err := b.save(ctx, p.BroadcastID)
	if err == nil && entry == nil {
		err = errors.New("its state vanished from Redis")
	}
	if err != nil {
		return fmt.Errorf("jobs: broadcast end %s: write the entry: %w", p.BroadcastID, err)
	}
	if r == 1 {
		log.Info("broadcast ended", "stream", entry.App+"/"+entry.StreamID, "pushes", len(entry.Pushes),
			"recordings", len(entry.Recordings), "duration", entry.Duration, "stitch", entry.Stitch)
	}
	return b.announceEnd(ctx, entry)
}

// announceEnd does what follows the end of a broadcast whose final entry is written:
// event 302, the automatic stitch when asked, the hooks. Each step is idempotent (the
// event and the stitch task have ids derived from the broadcast id).
func (b *Broadcasts) announceEnd(ctx context.Context, entry *catalog.Broadcast) error {
	ev := Event{
		ChannelID: entry.StreamID, StreamID: entry.StreamID, App: entry.App,
		EventType: EventBroadcastEnded, EventID: EventID(EventBroadcastEnded, entry.BroadcastID),
		BroadcastID: entry.BroadcastID, StartTime: entry.StartTime.Unix(), EndTime: entry.EndTime.Unix(),
		Duration: entry.Duration, Pushes: len(entry.Pushes),
	}
	if err := b.q.Notify(ctx, ev); err != nil {
		return fmt.Errorf("jobs: broadcast end %s: event: %w", entry.BroadcastID, err)
	}
	if entry.Stitch {
		payload, _ := json.Marshal(broadcastTask{BroadcastID: entry.BroadcastID})
		if err := b.q.Enqueue(ctx, asynq.NewTask(TaskBroadcastStitch, payload), asynq.Queue(QueueCallbacks),
			asynq.TaskID("broadcast-stitch:"+entry.BroadcastID), asynq.MaxRetry(broadcastStitchMaxRetry)); err != nil {
			return fmt.Errorf("jobs: broadcast end %s: queue the stitch: %w", entry.BroadcastID, err)
		}
	}
	for _, h := range b.hooks {
		if err := h(ctx, *entry); err != nil {
			return fmt.Errorf("jobs: broadcast end %s: hook: %w", entry.BroadcastID, err)
		}
	}
	return nil
}

// errFragmentsPending makes the automatic stitch wait (retry) for fragments still
// being uploaded.
var errFragmentsPending = errors.New("MP4 fragments of the broadcast are not stored yet")

// handleStitch queues the stitch of an ended broadcast's MP4 fragments once none is
// pending: a fragment handed to the upload queue and not yet in the catalog makes it
// retry, never stitch without it.
func (b *Broadcasts) handleStitch(ctx context.Context, t *asynq.Task) error {
	var p broadcastTask
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BroadcastID == "" {
		return fmt.Errorf("jobs: broadcast stitch: bad payload (%v): %w", err, asynq.SkipRetry)
	}
	pendingKey := broadcastPrefix + "b:" + p.BroadcastID + ":pending"
	pending, err := b.q.rdb.SMembers(ctx, pendingKey).Result()
	if err != nil {
		return fmt.Errorf("jobs: broadcast stitch %s: %w", p.BroadcastID, err)
	}
	var waiting []string
	for _, id := range pending {
		if strings.HasPrefix(id, pushRecordingMember) {
			waiting = append(waiting, id) // a push whose last fragment is not handed on yet
			continue
		}
		// A fragment queued again after it was stored (a reconcile racing the upload)
		// is noted pending again: the catalog says it is there.
		_, err := b.cat.Get(ctx, id)
		switch {
		case err == nil:
			b.q.rdb.SRem(ctx, pendingKey, id)
		case errors.Is(err, storage.ErrNotFound):
			waiting = append(waiting, id)
		default:
			return fmt.Errorf("jobs: broadcast stitch %s: %w", p.BroadcastID, err)
		}
	}
	if len(waiting) > 0 {
		return fmt.Errorf("jobs: broadcast stitch %s: %w: %d, e.g. %s", p.BroadcastID, errFragmentsPending, len(waiting), waiting[0])
	}
	sp, err := ResolveStitch(ctx, b.cat, StitchRequest{BroadcastID: p.BroadcastID})
	if errors.Is(err, storage.ErrNotFound) {
		b.log.Info("broadcast not stitched: it recorded no MP4", "broadcast_id", p.BroadcastID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("jobs: broadcast stitch %s: %w", p.BroadcastID, err)
	}
	if err := b.q.EnqueueStitch(ctx, sp); err != nil {
		return fmt.Errorf("jobs: broadcast stitch %s: %w", p.BroadcastID, err)
	}
	b.log.Info("broadcast stitch queued", "broadcast_id", p.BroadcastID, "job_id", sp.JobID, "inputs", len(sp.FileIDs))
	return nil
}

// EndLost ends the broadcasts the catalog says live but Redis does not know: their
// state, and their end task, were lost with a Redis that forgets (the embedded one at
// every restart, a shared one restarted without persistence). A push without an end
// ends where its last stored recording ends (else where it started); then the entry is
// written ended and the end is announced as handleEnd does. Call it at start, after
// the spool's fragments are queued again. It returns how many it ended.
func (b *Broadcasts) EndLost(ctx context.Context) (int, error) {
	live, err := b.cat.LiveBroadcasts(ctx)
	if err != nil {
		return 0, fmt.Errorf("jobs: broadcasts lost with Redis: %w", err)
	}
	n := 0
	var errs []error
	for _, entry := range live {
		known, err := b.q.rdb.Exists(ctx, broadcastPrefix+"b:"+entry.BroadcastID).Result()
		if err != nil {
			return n, fmt.Errorf("jobs: broadcasts lost with Redis: %w", err)
		}
		if known == 1 {
			continue // live, or its end task is on its way
		}
		if err := b.endLost(ctx, entry); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func (b *Broadcasts) endLost(ctx context.Context, entry *catalog.Broadcast) error {
	lastEnd := map[string]time.Time{} // push id -> end of its last stored recording
	for _, id := range entry.Recordings {
		rec, err := b.cat.Get(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("jobs: end lost broadcast %s: %w", entry.BroadcastID, err)
		}
		if rec.EndTime.After(lastEnd[rec.PushID]) {
			lastEnd[rec.PushID] = rec.EndTime
		}
	}
	var pushed time.Duration
	for i := range entry.Pushes {
		p := &entry.Pushes[i]
		if p.EndTime.IsZero() {
			p.EndTime = p.StartTime
			if e := lastEnd[p.PushID]; e.After(p.StartTime) {
				p.EndTime = e.UTC()
			}
		}
		if p.EndTime.After(entry.EndTime) {
			entry.EndTime = p.EndTime
		}
		pushed += p.EndTime.Sub(p.StartTime)
	}
	entry.State, entry.Duration, entry.Rev = catalog.BroadcastEnded, pushed.Seconds(), entry.Rev+1
	if err := b.cat.PutBroadcast(ctx, entry); err != nil {
		return fmt.Errorf("jobs: end lost broadcast %s: %w", entry.BroadcastID, err)
	}
	b.log.Warn("broadcast ended at start: its state was lost with Redis", "broadcast_id", entry.BroadcastID,
		"stream", entry.App+"/"+entry.StreamID, "pushes", len(entry.Pushes))
	return b.announceEnd(ctx, entry)
}

// PushRef names a live push of a broadcast.
type PushRef struct{ BroadcastID, PushID string }

// Renew extends the leases of pushes live on this node, until now + BroadcastLease.
// Call it every BroadcastLeaseRenew.
func (b *Broadcasts) Renew(ctx context.Context, pushes []PushRef, now time.Time) error {
	if len(pushes) == 0 {
		return nil
	}
	args := []any{broadcastPrefix, now.Add(BroadcastLease).UnixMilli()}
	for _, p := range pushes {
		args = append(args, p.BroadcastID, p.PushID)
	}
	if err := renewScript.Run(ctx, b.q.rdb, nil, args...).Err(); err != nil {
		return fmt.Errorf("jobs: renew the leases of %d live pushes: %w", len(pushes), err)
	}
	return nil
}

// Sweep queues the end of the live broadcasts whose pushes have all lost their lease
// more than a window ago: pushes whose end was never recorded (their node died for
// good, Redis failed when they ended), so no end task was scheduled for them. The end
// task takes each such push to have ended when its lease ran out. Live broadcasts Redis
// has forgotten are ended as EndLost does. It returns how many it ended or queued;
// call it now and then on some node (every serve node does).
func (b *Broadcasts) Sweep(ctx context.Context, now time.Time) (int, error) {
	live, err := b.cat.LiveBroadcasts(ctx)
	if err != nil {
		return 0, fmt.Errorf("jobs: sweep broadcasts: %w", err)
	}
	n := 0
	for _, entry := range live {
		key := broadcastPrefix + "b:" + entry.BroadcastID
		pipe := b.q.rdb.Pipeline()
		h := pipe.HMGet(ctx, key, "state", "pushes", "last_end", "window_ms")
		alive := pipe.ZRangeWithScores(ctx, key+":alive", 0, -1)
		if _, err := pipe.Exec(ctx); err != nil {
			return n, fmt.Errorf("jobs: sweep broadcast %s: %w", entry.BroadcastID, err)
		}
		v := h.Val()
		if v[0] == nil {
			// Redis lost it (restarted without persistence): as EndLost at start.
			if err := b.endLost(ctx, entry); err != nil {
				return n, err
			}
			n++
			continue
		}
		if len(alive.Val()) == 0 || v[0] != catalog.BroadcastLive {
			continue // ended, or every push ended as it should
		}
		var lastLease int64
		for _, z := range alive.Val() {
			lastLease = max(lastLease, int64(z.Score))
		}
		str := func(x any) string { s, _ := x.(string); return s }
		pushes := str(v[1])
		lastEnd, _ := strconv.ParseInt(str(v[2]), 10, 64)
		window, _ := strconv.ParseInt(str(v[3]), 10, 64)
		if max(lastLease, lastEnd)+window > now.UnixMilli() {
			continue // a push is live, or the window after the last one has not passed
		}
		count, _ := strconv.Atoi(pushes)
		payload, _ := json.Marshal(broadcastTask{BroadcastID: entry.BroadcastID, Pushes: count})
		err := b.q.Enqueue(ctx, asynq.NewTask(TaskBroadcastEnd, payload), asynq.Queue(QueueCallbacks),
			asynq.TaskID(fmt.Sprintf("broadcast-end:%s:%s:lost-%d", entry.BroadcastID, pushes, lastLease)), asynq.MaxRetry(uploadMaxRetry))
		if err != nil {
			return n, fmt.Errorf("jobs: sweep broadcast %s: %w", entry.BroadcastID, err)
		}
		b.log.Warn("broadcast with pushes whose end was lost: end queued", "broadcast_id", entry.BroadcastID,
			"lost_pushes", len(alive.Val()))
		n++
	}
	return n, nil
}
