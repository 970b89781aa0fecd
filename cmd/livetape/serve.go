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

// shutdownTimeout bounds the graceful part of shutdown.
const shutdownTimeout = 10 * time.Second

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
	rec, err := recorder.New(cfg.Record, filepath.Join(cfg.DataDir, "spool"), uploadSink{queue}, log)
	if err != nil {
		return fail(err)
	}
	queue.Register(jobs.TaskUpload, &jobs.Uploader{Store: store, Catalog: cat, Queue: queue, Spool: uploadSpool{rec.Spool()},
		PublicURL: cfg.PublicURL, KeyTemplate: cfg.Storage.KeyTemplate, Log: log})
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
	if n, err := pushes.sendCrashed(ctx, queue, log); err != nil {
		log.Error("push-end events of pushes live at the crash not queued; retried at the next start", "err", err)
	} else if n > 0 {
		log.Info("push-end events queued for pushes live at the crash", "count", n)
	}
	liveSrv := live.NewServer(cfg.Live, log, rec, pushEvents{q: queue, live: pushes, log: log})
	go reconcile(ctx, cfg.ReconcileInterval, rec, queue, cat, log)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/vod/", &api.VOD{Store: store, Presigned: cfg.VOD.Redirect == "presigned", Log: log})
	mux.Handle("/api/v1/", api.NewHandler(api.Config{Catalog: cat, Queue: queue, Key: cfg.APIKey, Log: log}))
	mux.Handle("/", liveSrv.Handler())
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("http listening", "addr", httpLn.Addr().String(), "data_dir", cfg.DataDir)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	// Hijacked HTTP-FLV connections end when their streams end (ServeRTMP closes them).
	shutErr := httpSrv.Shutdown(sctx)
	errs := errors.Join(<-errc, <-errc, shutErr)
	// Streams have ended: let the recorder finalize its last fragments.
	rec.Wait()
	return errs
}
