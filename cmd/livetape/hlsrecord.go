package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// HLS recordings (one playlist per broadcast, segments uploaded as they close): the
// recorder hands each closed segment and each push's end to the job queue.

// HLSSegmentClosed queues the upload of a segment.
func (s uploadSink) HLSSegmentClosed(seg *recorder.HLSSegment) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.q.EnqueueHLSSegment(ctx, jobs.HLSSegment{
		Segment: jobs.SegmentHandle{App: seg.App, StreamID: seg.StreamID, PushID: seg.PushID, Seq: seg.Seq},
		FileID:  seg.FileID, BroadcastID: seg.BroadcastID, BroadcastPush: seg.BroadcastPush,
		Duration: seg.Duration, Discontinuity: seg.Discontinuity, StartTime: seg.StartTime, EndTime: seg.EndTime,
		PushStart: seg.PushStart, StreamParam: seg.StreamParam,
	})
}

// HLSPushEnded records the push's end in Redis. With a reconnect window the recording
// ends with its broadcast (hlsBroadcastEnded); without one the push's end is its
// broadcast's end and the recording is finalized now.
func (s uploadSink) HLSPushEnded(p *recorder.HLSPush) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	push := jobs.HLSPush{
		FileID: p.FileID, App: p.App, StreamID: p.StreamID, PushID: p.PushID, BroadcastID: p.BroadcastID,
		BroadcastPush: p.BroadcastPush, StartTime: p.StartTime, EndTime: p.EndTime, Segments: p.Segments,
		StreamParam: p.StreamParam,
	}
	// The tag makes the finalize of a recording stopped and started again by the API
	// a new task: it ends with more segments.
	end := pendingHLSEnd{Push: push, Tag: p.PushID + "-" + strconv.Itoa(p.Segments)}
	if err := s.hlsPending.add(end); err != nil {
		return err
	}
	if s.noHLSFinalize || p.ReconnectWindow > 0 {
		// The end of the broadcast finalizes it; a stop before then leaves the
		// pending end, queued (finalized) at the next start, when the embedded
		// queue has forgotten the broadcast anyway.
		return s.q.HLSPushEnded(ctx, push)
	}
	return end.queue(ctx, s.q)
}

// hlsBroadcastEnded is the end-of-broadcast hook of HLS recordings: a broadcast with a
// reconnect window has its recording finalized once it ends (one without is finalized
// at its push's end). A broadcast that recorded no HLS finalizes to nothing.
func hlsBroadcastEnded(q *jobs.Queue) jobs.BroadcastHook {
	return func(ctx context.Context, b catalog.Broadcast) error {
		if b.ReconnectWindow == 0 {
			return nil
		}
		return finalizeHLS(ctx, q, b.BroadcastID)
	}
}

// pendingHLSEnd is the end of a push's HLS recording and the finalize it asks for.
type pendingHLSEnd struct {
	Push jobs.HLSPush `json:"push"`
	Tag  string       `json:"tag"`
}

func (e pendingHLSEnd) queue(ctx context.Context, q *jobs.Queue) error {
	if err := q.HLSPushEnded(ctx, e.Push); err != nil {
		return err
	}
	return q.EnqueueHLSFinalize(ctx, e.Push.BroadcastID, e.Tag)
}

// hlsPending remembers the push ends this node recorded and finalized, one file per
// push under DATA/hls-finalize, until the broadcast's finalize succeeded: the embedded
// queue forgets its Redis state and tasks when the process stops (a finalize still
// waiting for uploads at shutdown), the data dir does not. A nil hlsPending (a shared
// Redis keeps them) remembers nothing.
type hlsPending struct {
	dir string
	log *slog.Logger
}

// newHLSPending returns the pending push ends of the embedded queue, nil otherwise.
func newHLSPending(q *jobs.Queue, dataDir string, log *slog.Logger) *hlsPending {
	if !q.Embedded() {
		return nil
	}
	return &hlsPending{dir: filepath.Join(dataDir, "hls-finalize"), log: log}
}

// name is the file of a push end: broadcast ids are letters, digits, '-', '_', '.'
// (the queue refuses others), so '+' separates the push number.
func (p *hlsPending) name(broadcastID string, push int) string {
	return filepath.Join(p.dir, broadcastID+"+"+strconv.Itoa(push)+".json")
}

func (p *hlsPending) add(e pendingHLSEnd) error {
	if p == nil {
		return nil
	}
	if id := e.Push.BroadcastID; id == "" || !filepath.IsLocal(id) || strings.ContainsAny(id, `/\+`) {
		return fmt.Errorf("hls finalize pending: bad broadcast id %.40q", id)
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("hls finalize pending: %w", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("hls finalize pending: %w", err)
	}
	path := p.name(e.Push.BroadcastID, e.Push.BroadcastPush)
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		return fmt.Errorf("hls finalize pending: %w", err)
	}
	return os.Rename(path+".tmp", path)
}

// done forgets the push ends of a finalized broadcast.
func (p *hlsPending) done(broadcastID string) {
	if p == nil {
		return
	}
	files, _ := filepath.Glob(filepath.Join(p.dir, broadcastID+"+*.json"))
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.log.Warn("hls finalize pending: not forgotten; it runs again at the next start", "broadcast_id", broadcastID, "err", err)
		}
	}
}

// requeue records again the push ends a stop left pending and queues their finalize.
func (p *hlsPending) requeue(ctx context.Context, q *jobs.Queue) {
	if p == nil {
		return
	}
	files, _ := filepath.Glob(filepath.Join(p.dir, "*.json"))
	for _, f := range files {
		var e pendingHLSEnd
		b, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(b, &e)
		}
		if err == nil {
			err = e.queue(ctx, q)
		}
		if err != nil {
			p.log.Error("hls finalize left pending by the last stop not queued", "file", f, "err", err)
			continue
		}
		p.log.Info("hls finalize left pending by the last stop queued again", "broadcast_id", e.Push.BroadcastID)
	}
}

// finalizeHLS ends the HLS recording of a broadcast: the end-of-broadcast hook calls it
// once no push of the broadcast can follow. The task retries until every segment is
// stored, then writes the VOD playlist, the catalog entry and event 100.
func finalizeHLS(ctx context.Context, q *jobs.Queue, broadcastID string) error {
	return q.EnqueueHLSFinalize(ctx, broadcastID, "")
}

// HLSSegment resolves a segment handle in the recorder's spool (jobs.SegmentSpool).
func (u uploadSpool) HLSSegment(h jobs.SegmentHandle) (string, error) {
	f, err := u.s.HLSSegment(h.App, h.StreamID, h.PushID, h.Seq)
	if errors.Is(err, recorder.ErrNotInSpool) {
		return "", fmt.Errorf("%s: %w: %w", h, jobs.ErrFragmentGone, err)
	}
	return f.Path, err
}

func (u uploadSpool) RemoveHLSSegment(h jobs.SegmentHandle) error {
	return u.s.RemoveHLSSegment(h.App, h.StreamID, h.PushID, h.Seq)
}

// registerHLSJobs registers the HLS recording tasks: the segment uploads where a spool
// is (serve), the finalize everywhere shared work runs. The finalizes pending tells of
// are queued again.
func registerHLSJobs(q *jobs.Queue, store storage.Store, cat *catalog.Catalog, spool *recorder.Spool, pending *hlsPending, cfg Config, log *slog.Logger) {
	if spool != nil {
		q.Register(jobs.TaskHLSSegment, &jobs.HLSUploader{Store: store, Queue: q, Spool: uploadSpool{*spool},
			KeyTemplate: cfg.Storage.KeyTemplate, Log: log})
	}
	q.Register(jobs.TaskHLSFinalize, &jobs.HLSFinalizer{Store: store, Catalog: cat, Queue: q, PublicURL: cfg.PublicURL,
		KeyTemplate: cfg.Storage.KeyTemplate, Finalized: pending.done, Log: log})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pending.requeue(ctx, q)
}
