package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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

// HLSPushEnded records the push's end in Redis. Unless the sink leaves it to an
// end-of-broadcast hook (finalizeHLS), the push's end is its broadcast's end (a reconnect
// window of 0) and the recording is finalized now.
func (s uploadSink) HLSPushEnded(p *recorder.HLSPush) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.q.HLSPushEnded(ctx, jobs.HLSPush{
		FileID: p.FileID, App: p.App, StreamID: p.StreamID, PushID: p.PushID, BroadcastID: p.BroadcastID,
		BroadcastPush: p.BroadcastPush, StartTime: p.StartTime, EndTime: p.EndTime, Segments: p.Segments,
		StreamParam: p.StreamParam,
	})
	if err != nil || s.noHLSFinalize {
		return err
	}
	// The tag makes the finalize of a recording stopped and started again by the API
	// a new task: it ends with more segments.
	return s.q.EnqueueHLSFinalize(ctx, p.BroadcastID, p.PushID+"-"+strconv.Itoa(p.Segments))
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
// is (serve), the finalize everywhere shared work runs.
func registerHLSJobs(q *jobs.Queue, store storage.Store, cat *catalog.Catalog, spool *recorder.Spool, cfg Config, log *slog.Logger) {
	if spool != nil {
		q.Register(jobs.TaskHLSSegment, &jobs.HLSUploader{Store: store, Queue: q, Spool: uploadSpool{*spool},
			KeyTemplate: cfg.Storage.KeyTemplate, Log: log})
	}
	q.Register(jobs.TaskHLSFinalize, &jobs.HLSFinalizer{Store: store, Catalog: cat, Queue: q, PublicURL: cfg.PublicURL,
		KeyTemplate: cfg.Storage.KeyTemplate, Log: log})
}
