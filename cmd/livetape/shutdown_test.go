package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/stream"
)

// Stopping serve right after a recorded push ends finishes the job before it exits:
// the last fragments are finalized, uploaded and in the catalog, and the spool is
// empty (a stopped serve used to leave most closed fragments for its next start).
func TestServeStopFinishesUploads(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	redisSrv := redistest.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redisSrv.Addr()
	r := startServe(t, cfg)

	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/stop?record=mp4|flv&record_interval=2", 5)
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	r.stop() // returns once runServe has returned

	left, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "live", "stop", "*", "*"))
	if len(left) != 0 {
		t.Errorf("left in the spool after the stop: %v", left)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisSrv.Addr()})
	defer rdb.Close()
	cat, err := catalog.New(catalog.Config{Store: storage.Local{Dir: filepath.Join(cfg.DataDir, "store")}, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cat.List(context.Background(), catalog.Query{App: "live", StreamID: "stop", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[string][]int{}
	for _, rec := range res.Recordings {
		seqs[rec.Format] = append(seqs[rec.Format], rec.Seq)
	}
	for _, f := range []string{"mp4", "flv"} {
		slices.Sort(seqs[f])
		if len(seqs[f]) < 2 || seqs[f][0] != 1 || seqs[f][len(seqs[f])-1] != len(seqs[f]) {
			t.Errorf("%s fragments in the catalog: %v, want 1..n with n >= 2", f, seqs[f])
		}
	}
	if len(seqs["mp4"]) != len(seqs["flv"]) {
		t.Errorf("catalog: %d mp4 and %d flv fragments of one push", len(seqs["mp4"]), len(seqs["flv"]))
	}
}

// The shutdown waits for the end hooks of every live push, also of pushes that start
// while it waits (a connection accepted just before the RTMP listener closed): no race
// between counting them and waiting (a WaitGroup's Add from 0 raced its Wait, which
// -race reported in TestServeStopsOnCancel).
func TestShutdownWaitsForPushesStartedMeanwhile(t *testing.T) {
	e := &pushEvents{live: livePushes{dir: t.TempDir()}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), ch: make(chan *jobs.Event, pushEventBacklog),
		pubsNone: make(chan struct{})}
	close(e.pubsNone)
	pub := func(i int) *stream.Publication {
		return &stream.Publication{Params: &stream.PushParams{App: "live", StreamID: fmt.Sprintf("s%d", i)},
			PushID: "p", ClientAddr: "127.0.0.1:1"}
	}
	// Pushes starting from none while the shutdown begins to wait.
	for i := range 50 {
		var both sync.WaitGroup
		both.Add(2)
		go func() {
			defer both.Done()
			p := pub(1000 + i)
			e.PublishStarted(p)
			e.PublishEnded(p, stream.EndNormal, time.Now())
		}()
		go func() {
			defer both.Done()
			if err := e.waitEnded(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		both.Wait()
	}

	first := pub(0)
	e.PublishStarted(first)
	waited := make(chan error, 1)
	go func() { waited <- e.waitEnded(context.Background()) }()

	var wg sync.WaitGroup
	for i := 1; i <= 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pub(i)
			e.PublishStarted(p)
			e.PublishEnded(p, stream.EndNormal, time.Now())
		}()
	}
	second := pub(101)
	e.PublishStarted(second) // starts while the shutdown waits
	e.PublishEnded(first, stream.EndNormal, time.Now())
	wg.Wait()
	select {
	case err := <-waited:
		t.Fatalf("the wait ended (%v) with a push still live", err)
	default:
	}
	e.PublishEnded(second, stream.EndNormal, time.Now())
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.PublishStarted(first)
	if err := e.waitEnded(ctx); err == nil {
		t.Error("a wait cut short by its context with a push live says nil")
	}
}
