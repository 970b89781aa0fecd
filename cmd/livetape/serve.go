package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/live"
	"github.com/livetape/livetape/recorder"
)

// shutdownTimeout bounds the graceful part of shutdown, uploads of the spool included:
// within docker-compose's stop_grace_period (30 s) with a margin for the queue to close.
const shutdownTimeout = 25 * time.Second

// runServe runs the serve role (RTMP ingest, live playback over HTTP) until ctx is done,
// then stops accepting, ends publishers and closes viewers.
func runServe(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	rtmpLn, err := net.Listen("tcp", cfg.Live.RTMPAddr)
	if err != nil {
		return fmt.Errorf("rtmp listen: %w", err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		rtmpLn.Close()
		return fmt.Errorf("http listen: %w", err)
	}
	fail := func(err error) error {
		rtmpLn.Close()
		httpLn.Close()
		return err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return fail(err)
	}
	// A serve node always uploads its own spool; the shared work too unless
	// --no-worker leaves it to `livetape worker` processes.
	jcfg := cfg.Jobs
	jcfg.Serve = jobs.ServeAll
	if cfg.NoWorker {
		jcfg.Serve = jobs.ServeNode
	}
	queue, err := jobs.Open(ctx, jcfg, cfg.DataDir, log)
	if err != nil {
		return fail(err)
	}
	defer queue.Close()
	cat, err := openCatalog(ctx, store, queue, log)
	if err != nil {
		return fail(err)
	}
	hlsPending := newHLSPending(queue, cfg.DataDir, log) // hlsrecord.go
	rec, err := recorder.New(cfg.Record, filepath.Join(cfg.DataDir, "spool"), uploadSink{q: queue, hlsPending: hlsPending}, log)
	if err != nil {
		return fail(err)
	}
	uploads := newCountingStore(store) // metrics.go
	queue.Register(jobs.TaskUpload, &jobs.Uploader{Store: uploads, Catalog: cat, Queue: queue, Spool: uploadSpool{rec.Spool()},
		PublicURL: cfg.PublicURL, KeyTemplate: cfg.Storage.KeyTemplate, Posters: cfg.Transcode.Posters, Log: log})
	tc := registerTranscodeJobs(queue, uploads, cat, cfg, !cfg.NoWorker, log) // transcodejobs.go
	spool := rec.Spool()
	registerHLSJobs(queue, uploads, cat, &spool, hlsPending, cfg, log) // hlsrecord.go
	queue.Register(jobs.TaskStitch, &jobs.Stitcher{Store: uploads, Catalog: cat, Queue: queue,
		PublicURL: cfg.PublicURL, KeyTemplate: cfg.Storage.KeyTemplate, Transcoder: tc, Templates: cfg.Transcode.all(), Log: log})
	broadcasts := jobs.NewBroadcasts(queue, cat, log)
	broadcasts.OnEnded(hlsBroadcastEnded(queue)) // hlsrecord.go
	broadcasts.Register()
	reg, err := newRegistry(queue) // metrics.go
	if err != nil {
		return fail(err)
	}
	if err := queue.Start(); err != nil {
		return fail(err)
	}
	log.Info("serve", "node_id", cfg.Jobs.NodeID, "shared_work", !cfg.NoWorker)
	// What a crash left in the spool is finished and queued again before new pushes
	// arrive, and callbacks not yet delivered are queued again.
	if n, err := rec.Recover(); err != nil {
		log.Error("spool recovery", "err", err)
	} else if n > 0 {
		log.Info("spool recovery: fragments queued for upload", "count", n)
	}
	if err := queue.ResumePending(ctx); err != nil {
		log.Error("callbacks not re-queued", "err", err)
	}
	// Pushes live at a crash never sent their push-end event: send it now.
	pushes := livePushes{dir: filepath.Join(cfg.DataDir, "live-pushes")}
	if n, err := pushes.sendCrashed(ctx, queue, broadcasts, log); err != nil {
		log.Error("push-end events of pushes live at the crash not queued; retried at the next start", "err", err)
	} else if n > 0 {
		log.Info("push-end events queued for pushes live at the crash", "count", n)
	}
	if n, err := broadcasts.EndLost(ctx); err != nil {
		log.Error("broadcasts lost with Redis not all ended; retried at the next start", "err", err)
	} else if n > 0 {
		log.Info("broadcasts lost with Redis ended", "count", n)
	}
	events := newPushEvents(queue, pushes, log)
	loc := newLocator(queue.Redis(), cfg.Jobs.NodeID, cfg.NodeURL, log) // streams.go
	cfg.Live.TranscodeTemplates = cfg.Transcode.names()
	liveSrv := live.NewServer(cfg.Live, log, rec, events, loc)
	tracker := newBroadcastTracker(broadcasts, cfg.Record, log) // broadcasts.go
	liveSrv.TrackBroadcasts(tracker)
	metrics, err := metricsHandler(reg, liveSrv.Hub(), rec, uploads, cfg.APIKey, log)
	if err != nil {
		return fail(err)
	}
	go reconcile(ctx, cfg.ReconcileInterval, rec, queue, cat, log)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	vod := &api.VOD{Store: store, Presigned: cfg.VOD.Redirect == "presigned", Log: log}
	mux.Handle("/vod/clip/", &api.Clip{Catalog: cat, Store: store, PlayKey: cfg.Live.PlayKey, Next: vod, Log: log})
	mux.Handle("/vod/", vod)
	mux.Handle("/api/v1/", api.NewHandler(api.Config{Catalog: cat, Queue: queue, Key: cfg.APIKey, Log: log,
		Streams: liveStreams{live: liveSrv, rec: rec, nodeID: cfg.Jobs.NodeID}, Locator: loc, NodeID: cfg.Jobs.NodeID,
		Sign: signConfig(cfg), TranscodeTemplates: cfg.Transcode.names()}))
	mux.Handle("GET /metrics", metrics)
	closeDashboard := mountConsole(mux, cfg, queue, log) // console.go
	defer closeDashboard()
	mux.Handle("/", liveSrv.Handler())
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("http listening", "addr", httpLn.Addr().String(), "data_dir", cfg.DataDir)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go loc.run(ctx, liveSrv.Hub())
	go tracker.run(ctx)
	errc := make(chan error, 2)
	go func() {
		err := liveSrv.ServeRTMP(ctx, rtmpLn)
		cancel()
		errc <- err
	}()
	go func() {
		err := httpSrv.Serve(httpLn)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		cancel()
		errc <- err
	}()
	<-ctx.Done()
	return shutdown(cfg, log, httpSrv, errc, events, rec, queue)
}

// shutdown stops serve in order, within shutdownTimeout: stop accepting RTMP and end
// the publishers (ServeRTMP did, as ctx ended) → wait for the publications' end hooks
// (push-end events handed on, recordings cut) → stop HTTP → the recorder finalizes its
// last fragments and hands them to the queue → the push event sender is drained → this
// node's queued uploads finish (DrainNode) → the queue closes (runServe's defer). What
// the deadline cuts short stays in the spool and the outbox for the next start.
func shutdown(cfg Config, log *slog.Logger, httpSrv *http.Server, errc chan error, events *pushEvents, rec *recorder.Recorder, queue *jobs.Queue) error {
	log.Info("shutting down", "deadline", shutdownTimeout)
	start := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	rtmpErr := <-errc // ServeRTMP or HTTP, whichever ended first
	if err := events.waitEnded(sctx); err != nil {
		log.Warn("shutdown: publications still ending", "err", err)
	}
	// Hijacked HTTP-FLV connections end when their streams end (ServeRTMP closes them).
	shutErr := httpSrv.Shutdown(sctx)
	errs := errors.Join(rtmpErr, <-errc, shutErr)
	if err := rec.WaitContext(sctx); err != nil {
		log.Warn("shutdown: left in the spool for the next start", "err", err)
	}
	events.Close()
	if err := queue.DrainNode(sctx); err != nil {
		log.Warn("shutdown: uploads left for the next start", "err", err)
	}
	log.Info("shut down", "took", time.Since(start).Round(time.Millisecond), "node_id", cfg.Jobs.NodeID)
	return errs
}
