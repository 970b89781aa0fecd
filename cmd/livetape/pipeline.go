package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/stream"
)

// openStore returns S3 storage when a bucket is configured, else a folder under the data dir.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (storage.Store, error) {
	c := cfg.Storage.S3
	if c.Bucket == "" {
		dir := filepath.Join(cfg.DataDir, "store")
		log.Info("storage: local folder", "dir", dir)
		return storage.Local{Dir: dir}, nil
	}
	s3, err := storage.NewS3(ctx, storage.S3Config{
		Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey, PathStyle: c.PathStyle,
	})
	if err != nil {
		return nil, err
	}
	// A bucket that cannot be reached now is not fatal: uploads retry until it is.
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s3.EnsureBucket(ectx); err != nil {
		log.Warn("storage: S3 bucket not ready; uploads will retry", "bucket", c.Bucket, "err", err)
	}
	log.Info("storage: S3", "endpoint", c.Endpoint, "bucket", c.Bucket)
	return s3, nil
}

// uploadSink hands the recorder's closed fragments to the job queue: the catalog entry
// so far, from the fragment's manifest. The task names the fragment by a handle the
// spool resolves (EnqueueUpload derives it from the entry), never by a path.
type uploadSink struct {
	q *jobs.Queue
	// noHLSFinalize leaves the end of HLS recordings to finalizeHLS (hlsrecord.go).
	noHLSFinalize bool
	hlsPending    *hlsPending // the finalizes the embedded queue could forget (hlsrecord.go)
}

func (s uploadSink) FragmentClosed(m *recorder.Manifest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.q.EnqueueUpload(ctx, jobs.Recording{
		FileID: m.FileID, App: m.App, StreamID: m.StreamID, PushID: m.PushID, BroadcastID: m.BroadcastID, Seq: m.Seq,
		Format: m.Format, StartTime: m.StartTime, EndTime: m.EndTime, Duration: m.Duration,
		StreamParam: m.StreamParam, AudioOnly: m.AudioOnly, Recovered: m.Recovered,
	})
}

// RecordingStarted and RecordingDone mark a push as being recorded in its broadcast's
// state: the broadcast's automatic stitch waits for the last fragment of every push.
func (s uploadSink) RecordingStarted(m recorder.PushRecording) error { return s.pushRecording(m, true) }
func (s uploadSink) RecordingDone(m recorder.PushRecording) error    { return s.pushRecording(m, false) }

func (s uploadSink) pushRecording(m recorder.PushRecording, recording bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.q.BroadcastPushRecording(ctx, m.BroadcastID, m.PushID, recording)
}

// uploadSpool is the recorder's spool as the upload job asks for it (jobs.Spool).
type uploadSpool struct{ s recorder.Spool }

func (u uploadSpool) Fragment(h jobs.FragmentHandle) (jobs.Fragment, error) {
	files, err := u.s.Fragment(h.App, h.StreamID, h.PushID, h.Seq, h.Format)
	if errors.Is(err, recorder.ErrNotInSpool) {
		return jobs.Fragment{}, fmt.Errorf("%s: %w: %w", h, jobs.ErrFragmentGone, err)
	}
	if err != nil {
		return jobs.Fragment{}, err
	}
	var f jobs.Fragment
	for _, file := range files {
		f.Files = append(f.Files, jobs.FragmentFile{Name: file.Name, Path: file.Path})
	}
	return f, nil
}

func (u uploadSpool) Remove(h jobs.FragmentHandle) error {
	return u.s.Remove(h.App, h.StreamID, h.PushID, h.Seq, h.Format)
}

// pushEvents sends the push started (1) and push ended (0) callbacks, and keeps the
// pushes live on this node so that a crash does not lose their push-end event.
//
// The live server calls it on the publisher's connection, so it only hands the event
// to its sender goroutine: storing the event (fsync) and enqueueing it (a Redis round
// trip) no longer delay the publisher's "publish" answer. When the sender is behind
// (its channel full), the event is deferred: written to disk and notified by the next
// reconcile. Close drains the sender.
type pushEvents struct {
	q    *jobs.Queue
	live livePushes
	log  *slog.Logger

	ch   chan *jobs.Event // pointers: a backlog of 1024 events would hold 400 KB at rest
	done chan struct{}
	// Live publications, started and not ended yet, for the shutdown to wait on their
	// end hooks: a count and a channel closed while it is 0. Not a WaitGroup: a push
	// can start while the shutdown waits (its connection was accepted just before the
	// listener closed), and a WaitGroup's Add from 0 must not race its Wait.
	pubMu    sync.Mutex
	pubs     int
	pubsNone chan struct{}
}

// pushEventBacklog is how many push events may wait for the sender; beyond it they
// are deferred to the reconcile (a burst of thousands of publishers at once).
const pushEventBacklog = 1024

func newPushEvents(q *jobs.Queue, live livePushes, log *slog.Logger) *pushEvents {
	e := &pushEvents{q: q, live: live, log: log, ch: make(chan *jobs.Event, pushEventBacklog), done: make(chan struct{}),
		pubsNone: make(chan struct{})}
	close(e.pubsNone)
	go e.run()
	return e
}

var endReasons = map[stream.EndReason]jobs.PushEndReason{
	stream.EndNormal:      jobs.PushEndNormal,
	stream.EndInterrupted: jobs.PushEndInterrupted,
	stream.EndIdle:        jobs.PushEndIdle,
	stream.EndKicked:      jobs.PushEndKicked,
}

func (e *pushEvents) event(p *stream.Publication, t jobs.EventType) jobs.Event {
	host, _, _ := net.SplitHostPort(p.ClientAddr)
	return jobs.Event{
		ChannelID: p.Params.StreamID, StreamID: p.Params.StreamID, App: p.Params.App,
		EventType: t, EventID: jobs.EventID(t, p.Params.StreamID+"_"+p.PushID),
		StreamParam: p.Params.StreamParam(), ClientIP: host, BroadcastID: p.BroadcastID,
	}
}

func (e *pushEvents) PublishStarted(p *stream.Publication) {
	e.pubMu.Lock()
	if e.pubs == 0 {
		e.pubsNone = make(chan struct{})
	}
	e.pubs++
	e.pubMu.Unlock()
	if err := e.live.add(e.event(p, jobs.EventPushEnded)); err != nil {
		e.log.Error("push not remembered: a crash would lose its push-end event", "stream", p.Params.Key(), "err", err)
	}
	e.send(e.event(p, jobs.EventPushStarted))
}

func (e *pushEvents) PublishEnded(p *stream.Publication, reason stream.EndReason, _ time.Time) {
	defer func() {
		e.pubMu.Lock()
		if e.pubs--; e.pubs == 0 {
			close(e.pubsNone)
		}
		e.pubMu.Unlock()
	}()
	ev := e.event(p, jobs.EventPushEnded)
	r := endReasons[reason]
	ev.ErrCode, ev.ErrMsg = int(r), r.String()
	e.send(ev)
}

// send hands ev to the sender, or defers it when the sender is behind.
func (e *pushEvents) send(ev jobs.Event) {
	select {
	case e.ch <- &ev:
	default:
		e.log.Warn("push events backlog full: event deferred to the next reconcile", "event_id", ev.EventID)
		e.keep(ev, e.q.Defer(context.Background(), ev))
	}
}

// run notifies the events handed to it, in order, until Close.
func (e *pushEvents) run() {
	defer close(e.done)
	for p := range e.ch {
		ev := *p
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := e.q.Notify(ctx, ev)
		cancel()
		if err != nil {
			// Redis is down: the event is on disk (outbox or event record) when
			// Defer succeeds, and the reconcile sends it.
			e.log.Warn("callback not queued now; deferred to the next reconcile", "event_id", ev.EventID, "err", fmt.Sprint(err))
			err = e.q.Defer(context.Background(), ev)
		}
		e.keep(ev, err)
	}
}

// keep forgets an ended push once its push-end event is kept by the queue (err nil);
// otherwise the push stays remembered and the next start sends its end.
func (e *pushEvents) keep(ev jobs.Event, err error) {
	if err != nil {
		e.log.Error("callback not queued", "event_id", ev.EventID, "err", fmt.Sprint(err))
		return
	}
	if ev.EventType != jobs.EventPushEnded {
		return
	}
	if err := e.live.remove(ev); err != nil {
		e.log.Warn("ended push not forgotten: the next start sends its push end again (same event id, dropped as a duplicate)", "event_id", ev.EventID, "err", err)
	}
}

// waitEnded waits until every publication's end hook ran, or ctx ends.
func (e *pushEvents) waitEnded(ctx context.Context) error {
	for {
		e.pubMu.Lock()
		n, none := e.pubs, e.pubsNone
		e.pubMu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-none: // 0 for a moment; a push may have started since: look again
		case <-ctx.Done():
			return fmt.Errorf("push end hooks: %d still live: %w", n, ctx.Err())
		}
	}
}

// Close notifies what the sender still holds and stops it; call it once no push
// can start or end any more.
func (e *pushEvents) Close() {
	close(e.ch)
	<-e.done
}

// openCatalog returns the catalog of store, indexed in the queue's Redis, and makes sure
// its index is built: a new Redis, one restarted without persistence, and the embedded
// one at every start (it starts empty) get it rebuilt from the store. A rebuild that
// fails is logged, not fatal: lookups read the store until reconcile rebuilds it.
func openCatalog(ctx context.Context, store storage.Store, q *jobs.Queue, log *slog.Logger) (*catalog.Catalog, error) {
	cat, err := catalog.New(catalog.Config{Store: store, Redis: q.Redis(), Log: log})
	if err != nil {
		return nil, err
	}
	ensureIndex(ctx, cat, log)
	return cat, nil
}

// ensureIndex rebuilds the catalog index when it is missing, and logs what it did.
func ensureIndex(ctx context.Context, cat *catalog.Catalog, log *slog.Logger) {
	start := time.Now()
	rebuilt, err := cat.EnsureIndex(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Error("catalog index not rebuilt; lookups read the storage meanwhile", "err", err)
	case rebuilt:
		log.Info("catalog index rebuilt from the storage", "took", time.Since(start).Round(time.Millisecond))
	}
}

// reconcile queues again, every interval, what the disk says is unfinished: the queue
// may have lost it (Redis restarted without persistence), the spool and the event
// store have not. Both are idempotent, so work already queued is not duplicated. A
// Redis that lost its data gets the catalog index back too.
func reconcile(ctx context.Context, every time.Duration, rec *recorder.Recorder, q *jobs.Queue, cat *catalog.Catalog, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := rec.Resubmit(); err != nil {
			log.Warn("reconcile: spool", "err", err)
		}
		if err := q.ResumePending(ctx); err != nil && ctx.Err() == nil {
			log.Warn("reconcile: callbacks", "err", err)
		}
		ensureIndex(ctx, cat, log)
	}
}
