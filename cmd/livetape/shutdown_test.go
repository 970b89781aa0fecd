package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
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
