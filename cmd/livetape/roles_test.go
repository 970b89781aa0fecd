package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/jobs"
)

// The node id defaults to the host name, filled in after loading (defaultConfig stays
// the same on every host); LIVETAPE_NODE_ID and --node-id set it.
func TestNodeID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	if defaultConfig().Jobs.NodeID != "" {
		t.Error("defaultConfig depends on the host: README's table would too")
	}
	cfg, err := loadConfig("", mapEnv(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Jobs.NodeID != hostNodeID() || (jobsValidNodeID(host) && cfg.Jobs.NodeID != host) {
		t.Errorf("default node id %q, host %q", cfg.Jobs.NodeID, host)
	}
	cfg, err = loadConfig("", mapEnv(map[string]string{"LIVETAPE_NODE_ID": "edge-7"}), nil)
	if err != nil || cfg.Jobs.NodeID != "edge-7" {
		t.Errorf("LIVETAPE_NODE_ID: %q, %v", cfg.Jobs.NodeID, err)
	}
}

func jobsValidNodeID(id string) bool {
	c := jobs.DefaultConfig()
	c.NodeID = id
	return c.Validate() == nil
}

// `serve --no-worker` leaves callbacks to `livetape worker`: with both on one Redis, a
// push's events are delivered, by the worker (the serve node does not serve the
// callbacks queue), and the serve node reports them delivered.
func TestServeNoWorkerWithWorker(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	redis := redistest.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redis.Addr()
	cfg.Jobs.NodeID = "serve-a"
	cfg.NoWorker = true
	r := startServe(t, cfg)

	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/roles", 2)
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}

	workerLogs := &mediatest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := map[string]string{
		"LIVETAPE_REDIS_ADDR":   redis.Addr(),
		"LIVETAPE_DATA_DIR":     cfg.DataDir, // the serve node's store: the bucket they share
		"LIVETAPE_NODE_ID":      "worker-1",
		"LIVETAPE_CALLBACK_URL": cfg.Jobs.CallbackURLs[0],
		"LIVETAPE_CALLBACK_KEY": callbackKey,
		"LIVETAPE_LOG_LEVEL":    "debug",
	}
	go func() { done <- runEnv(ctx, []string{"worker"}, mapEnv(env), workerLogs, workerLogs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", workerLogs)
		}
	})
	mediatest.WaitFor(t, "push started and ended delivered by the worker", 20*time.Second, func() bool {
		return rc.count(jobs.EventPushStarted) == 1 && rc.count(jobs.EventPushEnded) == 1
	})
	for _, ev := range rc.snapshot() {
		mediatest.WaitFor(t, "serve to report "+ev.EventID+" delivered", 10*time.Second, func() bool {
			var rec jobs.EventRecord
			return json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/events/"+ev.EventID, ""), &rec) == nil &&
				rec.State == jobs.StateDelivered
		})
	}
	// The worker logs a delivery once its record says delivered: wait for the line.
	mediatest.WaitFor(t, "the worker to log both deliveries", 10*time.Second, func() bool {
		return strings.Count(workerLogs.String(), "callback delivered") == 2
	})
	if strings.Contains(r.logs.String(), "callback delivered") {
		t.Error("the --no-worker serve node delivered callbacks")
	}
}
