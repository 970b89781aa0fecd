package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/livetape/livetape/jobs"
)

// cmdWorker runs `livetape worker`: the same settings as serve, read from the same file
// and LIVETAPE_* variables (those a worker does not use, such as the listen addresses,
// are accepted and ignored, so that one file serves every role).
func cmdWorker(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	return runRole(ctx, "worker", args, env, stdout, stderr, runWorker)
}

// errWorkerNeedsRedis: a worker shares the queue of serve nodes, which the embedded
// Redis of a serve process is not.
var errWorkerNeedsRedis = errors.New("worker: needs a shared Redis (jobs.redis_addr, LIVETAPE_REDIS_ADDR): the embedded queue of `livetape serve` is that process's alone")

// runWorker works on the shared queues (callbacks, stitch, transcode, posters) until ctx is done. It opens no
// listener and has no spool.
func runWorker(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.Jobs.RedisAddr == "" {
		return errWorkerNeedsRedis
	}
	jcfg := cfg.Jobs
	jcfg.Serve = jobs.ServeShared
	queue, err := jobs.Open(ctx, jcfg, "", log)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		queue.Close()
		return err
	}
	cat, err := openCatalog(ctx, store, queue, log)
	if err != nil {
		queue.Close()
		return err
	}
	tc := registerTranscodeJobs(queue, store, cat, cfg, true, log) // transcodejobs.go
	queue.Register(jobs.TaskStitch, &jobs.Stitcher{Store: store, Catalog: cat, Queue: queue,
		PublicURL: cfg.PublicURL, KeyTemplate: cfg.Storage.KeyTemplate, Transcoder: tc, Templates: cfg.Transcode.all(), Log: log})
	registerHLSJobs(queue, store, cat, nil, nil, cfg, log) // hlsrecord.go
	broadcasts := jobs.NewBroadcasts(queue, cat, log)
	broadcasts.OnEnded(hlsBroadcastEnded(queue)) // hlsrecord.go
	broadcasts.Register()
	if err := queue.Start(); err != nil {
		queue.Close()
		return err
	}
	log.Info("worker started", "node_id", cfg.Jobs.NodeID, "redis", cfg.Jobs.RedisAddr)
	<-ctx.Done()
	log.Info("worker stopping")
	// Close lets running tasks finish (asynq's shutdown timeout), the rest stay queued.
	return queue.Close()
}
