package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/live"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/stream"
)

// broadcastJoiner makes every push it sees a push of one broadcast (what the reconnect
// window will do), numbering them from 1, and counts the packets of the current push.
type broadcastJoiner struct {
	rec  *recorder.Recorder
	id   string
	n    atomic.Int32
	mu   sync.Mutex
	pkts *atomic.Int64
}

func (b *broadcastJoiner) PublishStarted(p *stream.Publication) {
	p.BroadcastID, p.BroadcastPush = b.id, int(b.n.Add(1))
	n := &atomic.Int64{}
	if sub, _, err := p.Stream.SubscribeNoDrop(1 << 14); err == nil {
		go func() {
			for p := range sub.Packets() {
				if p.Kind != media.KindData {
					n.Add(1)
				}
			}
		}()
	}
	b.mu.Lock()
	b.pkts = n
	b.mu.Unlock()
	b.rec.PublishStarted(p)
}

func (b *broadcastJoiner) PublishEnded(p *stream.Publication, r stream.EndReason, t time.Time) {
	b.rec.PublishEnded(p, r, t)
}

func (b *broadcastJoiner) received() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pkts == nil {
		return 0
	}
	return b.pkts.Load()
}

// Three pushes of one broadcast, recorded by the real recorder and uploaded by the real
// jobs on redis-server and an S3 server: one HLS playlist in the bucket, the pushes
// joined by two discontinuities, as long as the three pushes; event 100 once, when the
// broadcast ends.
func TestHLSBroadcastOfThreePushes(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	redis := redistest.Start(t)
	s3 := s3test.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	logs := &mediatest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	ctx := context.Background()
	cfg := pipelineConfig(t, rc)
	cfg.fillHostDefaults()
	jcfg := cfg.Jobs
	jcfg.RedisAddr, jcfg.Serve = redis.Addr(), jobs.ServeAll
	queue, err := jobs.Open(ctx, jcfg, cfg.DataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { queue.Close() })
	store, err := storage.NewS3(ctx, storage.S3Config{Endpoint: s3.Endpoint, Region: s3.Region,
		Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := openCatalog(ctx, store, queue, log)
	if err != nil {
		t.Fatal(err)
	}
	// The end of the broadcast is left to the hook (finalizeHLS), as with a reconnect window.
	rec, err := recorder.New(cfg.Record, filepath.Join(cfg.DataDir, "spool"), uploadSink{q: queue, noHLSFinalize: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	vod := httptest.NewServer(http.StripPrefix("", &api.VOD{Store: store, Log: log}))
	t.Cleanup(vod.Close)
	cfg.PublicURL = vod.URL
	spool := rec.Spool()
	registerHLSJobs(queue, store, cat, &spool, nil, cfg, log)
	if err := queue.Start(); err != nil {
		t.Fatal(err)
	}
	joiner := &broadcastJoiner{rec: rec, id: "cam_b1"}
	srv := live.NewServer(live.DefaultConfig(), log, joiner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.ServeRTMP(sctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; rec.Wait() })

	// Pushes of 3, 5 and 2 s (the last frame included), each restarting its timestamps.
	var pushed float64
	for _, lastKeyframe := range []uint32{3000, 5000, 2000} {
		pub, pkts := pushLoop(t, "rtmp://"+ln.Addr().String()+"/live/cam?record=hls&record_interval=1", lastKeyframe)
		want := int64(0)
		for _, p := range pkts {
			if p.Kind != media.KindData {
				want++
			}
		}
		mediatest.WaitFor(t, "every packet of the push delivered", time.Minute, func() bool { return joiner.received() == want })
		if err := pub.Unpublish(); err != nil {
			t.Fatal(err)
		}
		pub.Close()
		pushed += float64(lastKeyframe+40) / 1000
		// The next push starts once this one's recording has ended (the stream is free).
		mediatest.WaitFor(t, "the push's recording to end", 30*time.Second, func() bool {
			return rec.Status("live", "cam") == nil
		})
	}
	mediatest.WaitFor(t, "the recorder to hand on every push end", 30*time.Second, func() bool {
		left, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "live", "cam", "*", "hls", "push.json"))
		return len(left) == 0 && strings.Count(logs.String(), "HLS recording of the push ended") == 3
	})
	// The broadcast ends: the hook finalizes.
	if err := finalizeHLS(ctx, queue, "cam_b1"); err != nil {
		t.Fatal(err)
	}
	mediatest.WaitFor(t, "event 100 of the HLS recording", time.Minute, func() bool {
		return rc.count(jobs.EventRecordingReady) == 1
	})
	ev := rc.snapshot()[0]
	if ev.FileFormat != "hls" || ev.BroadcastID != "cam_b1" || ev.FileID != recorder.HLSFileID("cam_b1") {
		t.Errorf("event %+v", ev)
	}
	if ev.Duration < pushed-0.1 || ev.Duration > pushed+0.1 {
		t.Errorf("event says %.3f s, pushed %.3f s", ev.Duration, pushed)
	}
	entry, err := cat.Get(ctx, ev.FileID)
	if err != nil || entry.Type != "fragment" || entry.BroadcastID != "cam_b1" || entry.Size != ev.FileSize ||
		entry.Key != ev.VideoID || !entry.EndTime.After(entry.StartTime) {
		t.Errorf("catalog entry %+v, %v", entry, err)
	}
	// The one playlist in the bucket.
	objs, err := store.List(ctx, "live/cam/")
	if err != nil {
		t.Fatal(err)
	}
	var playlists []string
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".m3u8") {
			playlists = append(playlists, o.Key)
		}
	}
	if len(playlists) != 1 || playlists[0] != ev.VideoID {
		t.Fatalf("playlists %v, want just %s", playlists, ev.VideoID)
	}
	pl := string(httpBody(t, ev.VideoURL, ""))
	if strings.Count(pl, "#EXT-X-DISCONTINUITY\n") != 2 || !strings.Contains(pl, "#EXT-X-PLAYLIST-TYPE:VOD\n") || !strings.HasSuffix(pl, "#EXT-X-ENDLIST\n") {
		t.Errorf("playlist:\n%s", pl)
	}
	pr := mediatest.ProbeFrames(t, ev.VideoURL)
	if d := pr.Duration(); d < pushed-0.1 || d > pushed+0.1 {
		t.Errorf("ffprobe: %.3f s over HTTP, pushed %.3f s", d, pushed)
	}
	if vc, _, _, n := pr.Stream("video"); vc != "h264" || n != int(pushed*25) {
		t.Errorf("video %s, %d frames; pushed %d", vc, n, int(pushed*25))
	}
	// Event 100 once, at the end: the segment uploads send none, and the finalize ran
	// once every segment was stored.
	if n := rc.count(jobs.EventRecordingReady); n != 1 || strings.Count(logs.String(), `msg="hls recording stored"`) != 1 {
		t.Errorf("%d events 100, want 1", n)
	}
	if left, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "live", "*")); len(left) != 0 {
		t.Errorf("spool not emptied: %v", left)
	}
}

// A long push recorded as HLS (10 minutes of media, pushed faster than real time):
// its segments are in the bucket while it is live, in a growing EVENT playlist, and
// the spool never holds more than a few of them.
func TestHLSLongPushUploadsWhileLive(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	if testing.Short() {
		t.Skip("10 minutes of media")
	}
	redis := redistest.Start(t)
	s3 := s3test.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redis.Addr()
	cfg.Storage.S3 = S3Config{Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true}
	r := startServe(t, cfg)

	const lastKeyframe = 600000 // ms
	pkts := loopFixture(t, filepath.Join("..", "..", "testdata", "av.flv"), lastKeyframe)
	pub := mediatest.PublishRTMP(t, "rtmp://"+r.rtmpAddr+"/live/long?record=hls&record_reconnect_window=0")
	spoolSegs := func() int {
		segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "live", "long", "*", "hls", "seg-*.ts"))
		return len(segs)
	}
	store, err := storage.NewS3(context.Background(), storage.S3Config{Endpoint: s3.Endpoint, Region: s3.Region,
		Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	maxSpool, sampled := 0, 0
	var livePlaylist string
	// 20 s of media per second: the spool is sampled every 2 s of media.
	pace := time.NewTicker(100 * time.Millisecond)
	defer pace.Stop()
	next := uint32(2000)
	for _, p := range pkts {
		if p.Timestamp >= next {
			<-pace.C
			next += 2000
			maxSpool = max(maxSpool, spoolSegs())
			sampled++
			if livePlaylist == "" && p.Timestamp >= 300000 {
				// Half-way: what the bucket holds of the live recording.
				livePlaylist = liveHLSPlaylist(t, store)
			}
		}
		if err := pub.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(livePlaylist, "#EXT-X-PLAYLIST-TYPE:EVENT\n") || strings.Contains(livePlaylist, "#EXT-X-ENDLIST") ||
		strings.Count(livePlaylist, "#EXTINF:") < 10 {
		t.Errorf("half-way through the push the bucket's playlist is:\n%s", livePlaylist)
	}
	t.Logf("spool held at most %d segments over %d samples", maxSpool, sampled)
	if maxSpool > 6 {
		t.Errorf("the spool held %d segments of 4 s while live; want a few", maxSpool)
	}
	if err := pub.Unpublish(); err != nil {
		t.Fatal(err)
	}
	mediatest.WaitFor(t, "event 100 of the HLS recording", 2*time.Minute, func() bool {
		return rc.count(jobs.EventRecordingReady) == 1
	})
	var ev jobs.Event
	for _, e := range rc.snapshot() {
		if e.EventType == jobs.EventRecordingReady {
			ev = e
		}
	}
	pushed := float64(lastKeyframe+40) / 1000
	if ev.FileFormat != "hls" || ev.Duration < pushed-0.1 || ev.Duration > pushed+0.1 {
		t.Errorf("event %+v: want hls of %.3f s", ev, pushed)
	}
	if d := mediatest.Probe(t, ev.VideoURL).Duration(); d < pushed-0.1 || d > pushed+0.1 {
		t.Errorf("ffprobe: %.3f s, pushed %.3f s", d, pushed)
	}
	mediatest.WaitFor(t, "the spool emptied", 30*time.Second, func() bool { return spoolSegs() == 0 })
}

// liveHLSPlaylist is the playlist of the one HLS recording in the bucket, "" if none yet.
func liveHLSPlaylist(t *testing.T, store storage.Store) string {
	objs, err := store.List(context.Background(), "live/long/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, "/index.m3u8") {
			rd, _, err := store.Open(context.Background(), o.Key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rd)
			rd.Close()
			return string(b)
		}
	}
	return ""
}

// kill -9 while closed HLS segments wait for storage (down): the next start uploads
// them, ends the push and finalizes its playlist. Nothing closed is lost.
func TestHLSSegmentsSurviveKill(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildLivetape(t)
	data := t.TempDir()
	storeDir := breakStorage(t, data)
	logs := &mediatest.SyncBuffer{}
	cmd, rtmpAddr := startLivetape(t, bin, data, logs)
	// 9 s and the keyframe at 9 s: segments [0, 4) and [4, 8) close, [8, 9] is being written.
	pushLoop(t, "rtmp://"+rtmpAddr+"/live/hlscrash?record=hls&record_reconnect_window=0", 9000)
	spool := filepath.Join(data, "spool", "live", "hlscrash", "*", "hls")
	mediatest.WaitFor(t, "two closed segments in the spool", 30*time.Second, func() bool {
		records, _ := filepath.Glob(filepath.Join(spool, "seg-*.json"))
		return len(records) == 2
	})
	mediatest.WaitFor(t, "a segment upload to fail", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "type=recording:hls-segment")
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	if err := os.Remove(storeDir); err != nil { // storage is back
		t.Fatal(err)
	}
	logs2 := &mediatest.SyncBuffer{}
	startLivetape(t, bin, data, logs2)
	playlist := storedHLSPlaylist(t, storeDir, "hlscrash")
	pl, _ := os.ReadFile(playlist)
	if strings.Count(string(pl), "#EXTINF:") != 2 || !strings.HasSuffix(string(pl), "#EXT-X-ENDLIST\n") {
		t.Errorf("playlist:\n%s", pl)
	}
	pr := mediatest.ProbeFrames(t, playlist)
	if d := pr.Duration(); d < 8-0.05 || d > 8+0.05 {
		t.Errorf("recovered %.3f s: want the 8 s of the two closed segments", d)
	}
	if vc, _, _, n := pr.Stream("video"); vc != "h264" || n != 200 {
		t.Errorf("video %s, %d frames, want 200", vc, n)
	}
	if !strings.Contains(logs2.String(), "HLS recording of a push recovered after a crash") {
		t.Errorf("recovery not logged:\n%s", logs2)
	}
	mediatest.WaitFor(t, "the spool emptied", 30*time.Second, func() bool {
		left, _ := filepath.Glob(filepath.Join(data, "spool", "live", "*"))
		return len(left) == 0
	})
}

// kill -9 after segments were uploaded, on the embedded Redis, which forgets the
// recording's state with the process: the next start rebuilds it from the bucket's
// playlist and finalizes the recording with every segment closed before the kill.
func TestHLSStateRebuiltAfterKill(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildLivetape(t)
	data := t.TempDir()
	storeDir := filepath.Join(data, "store", "live", "hlskill")
	logs := &mediatest.SyncBuffer{}
	cmd, rtmpAddr := startLivetape(t, bin, data, logs)
	// 13 s and the keyframe at 13 s: segments [0, 4), [4, 8) and [8, 12) close.
	pushLoop(t, "rtmp://"+rtmpAddr+"/live/hlskill?record=hls&record_reconnect_window=0", 13000)
	mediatest.WaitFor(t, "three segments in storage and none left closed in the spool", 30*time.Second, func() bool {
		stored, _ := filepath.Glob(filepath.Join(storeDir, "*", "p1-seg-*.ts"))
		records, _ := filepath.Glob(filepath.Join(data, "spool", "live", "hlskill", "*", "hls", "seg-*.json"))
		return len(stored) == 3 && len(records) == 0
	})
	pls, _ := filepath.Glob(filepath.Join(storeDir, "*", "index.m3u8"))
	if len(pls) != 1 {
		t.Fatalf("live playlists %v", pls)
	}
	live, _ := os.ReadFile(pls[0])
	if !strings.Contains(string(live), "#EXT-X-PLAYLIST-TYPE:EVENT\n") || strings.Contains(string(live), "ENDLIST") {
		t.Errorf("live playlist:\n%s", live)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	logs2 := &mediatest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("second run:\n%s", logs2)
		}
	})
	startLivetape(t, bin, data, logs2)
	mediatest.WaitFor(t, "the HLS recording catalogued", 30*time.Second, func() bool {
		ms, _ := filepath.Glob(filepath.Join(storeDir, "*.json"))
		return len(ms) == 1
	})
	pl, _ := os.ReadFile(pls[0])
	if strings.Count(string(pl), "#EXTINF:") != 3 || !strings.HasSuffix(string(pl), "#EXT-X-ENDLIST\n") {
		t.Errorf("playlist:\n%s", pl)
	}
	if d := mediatest.ProbeFrames(t, pls[0]).Duration(); d < 12-0.05 || d > 12+0.05 {
		t.Errorf("recording of %.3f s: want the 12 s of the three closed segments", d)
	}
	if !strings.Contains(logs2.String(), "recording state rebuilt from the bucket") {
		t.Errorf("rebuild not logged:\n%s", logs2)
	}
}

// A push ends while storage is down, and livetape stops (gracefully) before the HLS
// recording could be finalized: the embedded queue forgets the finalize, the data dir
// does not, and the next start uploads the segments and finalizes the recording.
func TestHLSFinalizeSurvivesStop(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildLivetape(t)
	data := t.TempDir()
	storeDir := breakStorage(t, data)
	logs := &mediatest.SyncBuffer{}
	cmd, rtmpAddr := startLivetape(t, bin, data, logs)
	pub, _ := pushLoop(t, "rtmp://"+rtmpAddr+"/live/hlsstop?record=hls&record_reconnect_window=0", 6000)
	mediatest.WaitFor(t, "a closed segment in the spool", 30*time.Second, func() bool {
		records, _ := filepath.Glob(filepath.Join(data, "spool", "live", "hlsstop", "*", "hls", "seg-*.json"))
		return len(records) == 1
	})
	pub.Unpublish()
	pub.Close()
	mediatest.WaitFor(t, "the finalize to wait for the uploads", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "type=recording:hls-finalize")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("livetape stopped with %v:\n%s", err, logs)
	}

	if err := os.Remove(storeDir); err != nil { // storage is back
		t.Fatal(err)
	}
	logs2 := &mediatest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first run:\n%s\nsecond run:\n%s", logs, logs2)
		}
	})
	startLivetape(t, bin, data, logs2)
	playlist := storedHLSPlaylist(t, storeDir, "hlsstop")
	if d := mediatest.ProbeFrames(t, playlist).Duration(); d < 6.04-0.05 || d > 6.04+0.05 {
		t.Errorf("recording of %.3f s, pushed 6.04 s", d)
	}
	mediatest.WaitFor(t, "the pending finalize forgotten", 10*time.Second, func() bool {
		left, _ := os.ReadDir(filepath.Join(data, "hls-finalize"))
		return len(left) == 0
	})
}

// breakStorage puts a file where the local store's folder goes under data: uploads
// fail (and retry) until the test removes it. It returns the store's path.
func breakStorage(t *testing.T, data string) string {
	t.Helper()
	storeDir := filepath.Join(data, "store")
	if err := os.WriteFile(storeDir, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	return storeDir
}

// storedHLSPlaylist waits until the local store under storeDir catalogues the HLS
// recording of live/streamID and returns its one playlist.
func storedHLSPlaylist(t *testing.T, storeDir, streamID string) string {
	t.Helper()
	mediatest.WaitFor(t, "the HLS recording catalogued", 30*time.Second, func() bool {
		ms, _ := filepath.Glob(filepath.Join(storeDir, "live", streamID, "*.json"))
		return len(ms) == 1
	})
	pls, _ := filepath.Glob(filepath.Join(storeDir, "live", streamID, "*", "index.m3u8"))
	if len(pls) != 1 {
		t.Fatalf("playlists %v", pls)
	}
	return pls[0]
}
