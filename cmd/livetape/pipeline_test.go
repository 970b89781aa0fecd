package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage"
)

const callbackKey = "cb-key"

// receiver is a customer's backend: it verifies and keeps every callback.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	events []jobs.Event
	fail   int // answer 500 to this many requests first
	hits   map[string]int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := jobs.VerifyCallback(callbackKey, body, r.Header, time.Now()); err != nil {
		rc.t.Errorf("callback does not verify: %v\n%s", err, body)
	}
	var ev jobs.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.t.Errorf("callback body: %v", err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hits[ev.EventID]++
	if rc.fail > 0 {
		rc.fail--
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	rc.events = append(rc.events, ev)
}

func (rc *receiver) snapshot() []jobs.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]jobs.Event(nil), rc.events...)
}

func (rc *receiver) count(t jobs.EventType) int {
	n := 0
	for _, ev := range rc.snapshot() {
		if ev.EventType == t {
			n++
		}
	}
	return n
}

type pipelineRig struct {
	cfg      Config
	rtmpAddr string
	httpURL  string
	logs     *mediatest.SyncBuffer
	stop     func()
}

// startServe runs runServe in-process with cfg adjusted to fresh ports.
func startServe(t *testing.T, cfg Config) *pipelineRig {
	t.Helper()
	cfg.Live.RTMPAddr = freePort(t)
	cfg.HTTPAddr = freePort(t)
	cfg.PublicURL = "http://" + cfg.HTTPAddr
	cfg.fillHostDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &mediatest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, log) }()
	r := &pipelineRig{cfg: cfg, rtmpAddr: cfg.Live.RTMPAddr, httpURL: cfg.PublicURL, logs: logs}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("serve log:\n%s", logs)
		}
	})
	mediatest.WaitFor(t, "serve to answer", 10*time.Second, func() bool {
		resp, err := http.Get(r.httpURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return r
}

func pipelineConfig(t *testing.T, rc *receiver) Config {
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Jobs.CallbackURLs = []string{httptest.NewServer(rc).URL}
	cfg.Jobs.CallbackKey = callbackKey
	cfg.Jobs.RetryBaseDelay = 50 * time.Millisecond
	return cfg
}

// A push recorded in three formats reaches the customer as callbacks (1, 100 per
// MP4 and FLV fragment and one for the push's HLS playlist, 0) whose replays play from livetape and sit in the S3 bucket.
func TestPipelineRecordUploadNotify(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	redis := redistest.Start(t)
	s3 := s3test.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}, fail: 2}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redis.Addr()
	cfg.Storage.S3 = S3Config{Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true}
	r := startServe(t, cfg)

	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/rec?record=mp4|flv|hls&record_interval=5&record_reconnect_window=0", 12)
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	mediatest.WaitFor(t, "7 recording callbacks and the push end", 60*time.Second, func() bool {
		return rc.count(jobs.EventRecordingReady) == 7 && rc.count(jobs.EventPushEnded) == 1
	})
	events := rc.snapshot()
	if events[0].EventType != jobs.EventPushStarted || rc.count(jobs.EventPushStarted) != 1 {
		t.Errorf("first event %d, %d push started events: want one push started, first", events[0].EventType, rc.count(jobs.EventPushStarted))
	}
	// The receiver failed the first two requests: the event was sent exactly once more
	// after each failure, then marked delivered; every event arrived once.
	rc.mu.Lock()
	hits, seen := 0, map[string]bool{}
	for _, n := range rc.hits {
		hits += n
	}
	for _, ev := range events {
		if seen[ev.EventID] {
			t.Errorf("event %s delivered twice", ev.EventID)
		}
		seen[ev.EventID] = true
	}
	rc.mu.Unlock()
	if hits != len(events)+2 {
		t.Errorf("%d requests for %d events and 2 failures", hits, len(events))
	}
	mediatest.WaitFor(t, "the first event marked delivered", 10*time.Second, func() bool {
		var rec jobs.EventRecord
		return json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/events/"+events[0].EventID, ""), &rec) == nil &&
			rec.State == jobs.StateDelivered
	})

	store, err := storage.NewS3(context.Background(), storage.S3Config{Endpoint: s3.Endpoint, Region: s3.Region,
		Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	formats := map[string]int{}
	var total float64
	for _, ev := range events {
		if ev.EventType != jobs.EventRecordingReady {
			continue
		}
		formats[ev.FileFormat]++
		if ev.StreamID != "rec" || ev.App != "live" || ev.FileSize == 0 || ev.Duration < 1 ||
			!strings.Contains(ev.StreamParam, "record_interval=5") || ev.EndTime < ev.StartTime {
			t.Errorf("event %+v", ev)
		}
		switch ev.FileFormat {
		case "mp4":
			total += ev.Duration
		case "hls": // record_interval does not cut HLS: the whole push
			if ev.Duration < 11.7 || ev.Duration > 12.3 {
				t.Errorf("HLS recording of %.2f s, pushed 12 s", ev.Duration)
			}
		}
		key := strings.TrimPrefix(ev.VideoURL, r.httpURL+"/vod/")
		if _, err := store.Stat(context.Background(), key); err != nil {
			t.Errorf("%s not in the bucket: %v", key, err)
		}
		pr := mediatest.ProbeFrames(t, ev.VideoURL)
		if vc, _, _, n := pr.Stream("video"); vc != "h264" || n < 25 {
			t.Errorf("%s: video %s, %d frames", ev.VideoURL, vc, n)
		}
	}
	if formats["mp4"] != 3 || formats["flv"] != 3 || formats["hls"] != 1 {
		t.Errorf("formats %v, want 3 MP4, 3 FLV, 1 HLS", formats)
	}
	if total < 11.7 || total > 12.3 {
		t.Errorf("mp4 fragments add up to %.2f s", total)
	}

	// A Range request returns exactly the asked bytes.
	var mp4URL string
	for _, ev := range events {
		if ev.FileFormat == "mp4" {
			mp4URL = ev.VideoURL
			break
		}
	}
	full := httpBody(t, mp4URL, "")
	part := httpBody(t, mp4URL, "bytes=1000-1999")
	if len(part) != 1000 || string(part) != string(full[1000:2000]) {
		t.Errorf("range: %d bytes", len(part))
	}

	// The recordings API lists them.
	var list struct {
		Total      int `json:"total"`
		Recordings []jobs.Recording
	}
	if err := json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings?stream_id=rec&format=flv", ""), &list); err != nil || list.Total != 3 {
		t.Errorf("recordings API: %d, %v", list.Total, err)
	}
	// Nothing is left in the spool.
	left, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "live", "rec", "*", "*"))
	if len(left) != 0 {
		t.Errorf("spool not emptied: %v", left)
	}
}

func httpBody(t *testing.T, url, rng string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return b
}

// S3 down during a recording and Redis restarted in the middle of it: the spool keeps
// the fragments, uploads retry, and everything arrives once S3 is back.
func TestPipelineSurvivesOutages(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	redis := redistest.Start(t)
	s3 := s3test.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redis.Addr()
	cfg.Storage.S3 = S3Config{Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true}
	cfg.ReconcileInterval = 500 * time.Millisecond
	r := startServe(t, cfg)

	s3.Stop()
	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/out?record=mp4|flv&record_interval=3", 8)
	spooled := func() int {
		ms, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "live", "out", "*", "*.json"))
		n := 0
		for _, m := range ms {
			if b, _ := os.ReadFile(m); strings.Contains(string(b), `"state": "closed"`) {
				n++
			}
		}
		return n
	}
	mediatest.WaitFor(t, "a closed fragment in the spool", 20*time.Second, func() bool { return spooled() > 0 })
	redis.Stop()
	redis.Restart()
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	mediatest.WaitFor(t, "every fragment closed", 20*time.Second, func() bool { return spooled() == 6 })
	if n := rc.count(jobs.EventRecordingReady); n != 0 {
		t.Fatalf("%d recordings announced while S3 was down", n)
	}
	s3.Restart()
	mediatest.WaitFor(t, "6 recording callbacks after S3 came back", 90*time.Second, func() bool {
		return rc.count(jobs.EventRecordingReady) == 6
	})
	for _, ev := range rc.snapshot() {
		if ev.EventType == jobs.EventRecordingReady {
			if pr := mediatest.ProbeFrames(t, ev.VideoURL); pr.Duration() < 1.5 {
				t.Errorf("%s: %.2f s", ev.VideoURL, pr.Duration())
			}
		}
	}
	mediatest.WaitFor(t, "the spool to empty", 10*time.Second, func() bool { return spooled() == 0 })
}
