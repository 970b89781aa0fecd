package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/stream"
)

// broadcastTracker is the live server's broadcast tracker (live.BroadcastTracker): a
// push's reconnect window and stitch come from its URL or the record configuration,
// its broadcast from the jobs' tracker in the shared Redis. It keeps the pushes live on
// this node, whose leases run renews.
type broadcastTracker struct {
	b      *jobs.Broadcasts
	record recorder.Config
	log    *slog.Logger

	mu   sync.Mutex
	live map[*stream.Publication]jobs.PushRef
}

func newBroadcastTracker(b *jobs.Broadcasts, record recorder.Config, log *slog.Logger) *broadcastTracker {
	return &broadcastTracker{b: b, record: record, log: log, live: map[*stream.Publication]jobs.PushRef{}}
}

func (t *broadcastTracker) PushStarted(ctx context.Context, p *stream.Publication) (string, int, error) {
	window, stitch := t.record.Broadcast(p.Params)
	id, n, err := t.b.Begin(ctx, jobs.BroadcastPush{App: p.Params.App, StreamID: p.Params.StreamID, PushID: p.PushID,
		Started: p.Started, Window: window, Stitch: stitch})
	if err == nil {
		t.mu.Lock()
		t.live[p] = jobs.PushRef{BroadcastID: id, PushID: p.PushID}
		t.mu.Unlock()
	}
	return id, n, err
}

func (t *broadcastTracker) PushEnded(ctx context.Context, p *stream.Publication, ended time.Time) error {
	t.mu.Lock()
	_, tracked := t.live[p]
	delete(t.live, p)
	t.mu.Unlock()
	if !tracked {
		return nil // its broadcast began without the tracker (Redis was unreachable)
	}
	return t.b.End(ctx, p.BroadcastID, p.PushID, ended)
}

// broadcastSweepEvery is how often a serve node looks for broadcasts whose pushes lost
// their lease (jobs.Broadcasts.Sweep).
const broadcastSweepEvery = time.Minute

// run renews the leases of the pushes live on this node every jobs.BroadcastLeaseRenew,
// and sweeps broadcasts with lost pushes every broadcastSweepEvery, until ctx ends.
func (t *broadcastTracker) run(ctx context.Context) {
	renew := time.NewTicker(jobs.BroadcastLeaseRenew)
	defer renew.Stop()
	sweep := time.NewTicker(broadcastSweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-renew.C:
			t.mu.Lock()
			refs := make([]jobs.PushRef, 0, len(t.live))
			for _, r := range t.live {
				refs = append(refs, r)
			}
			t.mu.Unlock()
			if err := t.b.Renew(ctx, refs, now); err != nil {
				t.log.Warn("broadcast leases not renewed", "pushes", len(refs), "err", err)
			}
		case now := <-sweep.C:
			if _, err := t.b.Sweep(ctx, now); err != nil {
				t.log.Warn("broadcast sweep", "err", err)
			}
		}
	}
}
