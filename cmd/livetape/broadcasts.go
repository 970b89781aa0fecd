package main

import (
	"context"
	"time"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/stream"
)

// broadcastTracker is the live server's broadcast tracker (live.BroadcastTracker): a
// push's reconnect window and stitch come from its URL or the record configuration,
// its broadcast from the jobs' tracker in the shared Redis.
type broadcastTracker struct {
	b      *jobs.Broadcasts
	record recorder.Config
}

func (t broadcastTracker) PushStarted(ctx context.Context, p *stream.Publication) (string, int, error) {
	window, stitch := t.record.Broadcast(p.Params)
	return t.b.Begin(ctx, jobs.BroadcastPush{App: p.Params.App, StreamID: p.Params.StreamID, PushID: p.PushID,
		Started: p.Started, Window: window, Stitch: stitch})
}

func (t broadcastTracker) PushEnded(ctx context.Context, p *stream.Publication, ended time.Time) error {
	return t.b.End(ctx, p.BroadcastID, p.PushID, ended)
}
