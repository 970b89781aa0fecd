package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// The scaled-out shape on one machine, as real processes: one redis-server, one
// versitygw, `livetape serve` nodes and `livetape worker`s sharing them, and a customer
// backend (hookReceiver) counting what it is sent.

// hookMode is how the customer's backend answers callbacks.
type hookMode int

const (
	hookOK   hookMode = iota // 200
	hookFail                 // 500: the sender retries
	hookHang                 // no answer until the sender goes away
)

// hookReceiver is a customer's backend that counts, per event id, the attempts it saw
// and the 2xx answers it gave: an event delivered twice shows as a count of 2.
type hookReceiver struct {
	t *testing.T

	mu        sync.Mutex
	mode      hookMode
	attempts  map[string]int
	delivered map[string]int
	events    map[string]jobs.Event // as delivered
	hung      int                   // requests held now (hookHang)
}

func newHookReceiver(t *testing.T, mode hookMode) (*hookReceiver, string) {
	rc := &hookReceiver{t: t, mode: mode, attempts: map[string]int{}, delivered: map[string]int{}, events: map[string]jobs.Event{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := jobs.VerifyCallback(callbackKey, body, r.Header, time.Now()); err != nil {
		rc.t.Errorf("callback does not verify: %v\n%s", err, body)
	}
	var ev jobs.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.EventID == "" {
		rc.t.Errorf("callback body: %v\n%s", err, body)
		return
	}
	rc.mu.Lock()
	rc.attempts[ev.EventID]++
	mode := rc.mode
	switch mode {
	case hookOK:
		rc.delivered[ev.EventID]++
		rc.events[ev.EventID] = ev
	case hookHang:
		rc.hung++
	}
	rc.mu.Unlock()
	switch mode {
	case hookFail:
		http.Error(w, "try again", http.StatusInternalServerError)
	case hookHang:
		<-r.Context().Done() // the sender gave up or died: it gets no answer
		rc.mu.Lock()
		rc.hung--
		rc.mu.Unlock()
	}
}

func (rc *hookReceiver) setMode(m hookMode) {
	rc.mu.Lock()
	rc.mode = m
	rc.mu.Unlock()
}

// counts returns copies of the attempts and 2xx answers per event id, and how many
// requests are held.
func (rc *hookReceiver) counts() (attempts, delivered map[string]int, hung int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	attempts, delivered = map[string]int{}, map[string]int{}
	for id, n := range rc.attempts {
		attempts[id] = n
	}
	for id, n := range rc.delivered {
		delivered[id] = n
	}
	return attempts, delivered, rc.hung
}

// deliveredEvents returns the events answered 2xx, by id.
func (rc *hookReceiver) deliveredEvents() map[string]jobs.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	evs := map[string]jobs.Event{}
	for id, ev := range rc.events {
		evs[id] = ev
	}
	return evs
}

// checkOnce fails the test for every event answered 2xx more or less than once.
func (rc *hookReceiver) checkOnce(t *testing.T, ids []string) {
	t.Helper()
	_, delivered, _ := rc.counts()
	for _, id := range ids {
		if delivered[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, delivered[id])
		}
	}
	if len(delivered) != len(ids) {
		t.Errorf("%d events delivered, want %d: %v", len(delivered), len(ids), delivered)
	}
}

// topology is one Redis and one bucket shared by livetape processes.
type topology struct {
	t      *testing.T
	bin    string
	redis  *redistest.Server
	s3     *s3test.Server
	hook   string // callback URL
	config string // YAML file every node reads
}

// newTopology starts redis-server and versitygw, and writes the configuration the
// nodes share: what only the YAML file sets (fast retries, a short reconcile).
func newTopology(t *testing.T, hookURL string) *topology {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tp := &topology{t: t, redis: redistest.Start(t), s3: s3test.Start(t), hook: hookURL}
	tp.bin = buildLivetape(t)
	tp.config = filepath.Join(t.TempDir(), "livetape.yaml")
	yaml := "reconcile_interval: 500ms\njobs:\n  retry_base_delay: 50ms\nstorage:\n  s3:\n    path_style: true\n"
	if err := os.WriteFile(tp.config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return tp
}

// node is one livetape process of a topology.
type node struct {
	id       string
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the process has exited and been reaped
	logs     *mediatest.SyncBuffer
	dataDir  string
	rtmpAddr string // serve only
	httpURL  string // serve only
}

func (tp *topology) env(nodeID string) []string {
	s := tp.s3
	return append(os.Environ(), "LIVETAPE_CONFIG="+tp.config, "LIVETAPE_NODE_ID="+nodeID,
		"LIVETAPE_REDIS_ADDR="+tp.redis.URL(), "LIVETAPE_PUSH_KEY=", "LIVETAPE_API_KEY=", "LIVETAPE_LOG_LEVEL=info",
		"LIVETAPE_S3_ENDPOINT="+s.Endpoint, "LIVETAPE_S3_BUCKET="+s.Bucket, "LIVETAPE_S3_REGION="+s.Region,
		"LIVETAPE_S3_ACCESS_KEY="+s.AccessKey, "LIVETAPE_S3_SECRET_KEY="+s.SecretKey,
		"LIVETAPE_CALLBACK_URL="+tp.hook, "LIVETAPE_CALLBACK_KEY="+callbackKey,
		// These tests count every callback and compare catalog entries over time:
		// posters (event 200, an entry updated) are TestServeTranscodeJobs' subject.
		"LIVETAPE_POSTERS=false")
}

// start runs `livetape ARGS` as node nodeID, killed when the test ends (its log shown
// if the test failed).
func (tp *topology) start(nodeID string, env []string, args ...string) *node {
	t := tp.t
	t.Helper()
	n := &node{id: nodeID, logs: &mediatest.SyncBuffer{}}
	n.cmd = exec.Command(tp.bin, args...)
	n.cmd.Env = env
	n.cmd.Stderr = n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("log of %s (%s):\n%s", nodeID, strings.Join(args, " "), n.logs)
		}
	})
	return n
}

// startServe runs `livetape serve` (with extra flags) on a data dir and ports of its
// own, and waits until it answers HTTP.
func (tp *topology) startServe(nodeID string, flags ...string) *node {
	t := tp.t
	t.Helper()
	for attempt := 1; ; attempt++ {
		rtmpAddr, httpAddr, dataDir := freePort(t), freePort(t), t.TempDir()
		env := append(tp.env(nodeID), "LIVETAPE_RTMP_ADDR="+rtmpAddr, "LIVETAPE_HTTP_ADDR="+httpAddr,
			"LIVETAPE_PUBLIC_URL=http://"+httpAddr, "LIVETAPE_DATA_DIR="+dataDir)
		n := tp.start(nodeID, env, append([]string{"serve"}, flags...)...)
		n.rtmpAddr, n.httpURL, n.dataDir = rtmpAddr, "http://"+httpAddr, dataDir
		up := false
		mediatest.WaitFor(t, nodeID+" to answer HTTP or exit", 20*time.Second, func() bool {
			select {
			case <-n.exited:
				return true
			default:
			}
			resp, err := http.Get(n.httpURL + "/healthz")
			if err == nil {
				resp.Body.Close()
				up = resp.StatusCode == http.StatusOK
			}
			return up
		})
		if up {
			return n
		}
		// A port found free was taken before livetape bound it: try others.
		if attempt == 3 || !strings.Contains(n.logs.String(), "address already in use") {
			t.Fatalf("%s exited:\n%s", nodeID, n.logs)
		}
	}
}

// startWorker runs `livetape worker` and waits until it works on the queues.
func (tp *topology) startWorker(nodeID string) *node {
	tp.t.Helper()
	n := tp.start(nodeID, tp.env(nodeID), "worker")
	mediatest.WaitFor(tp.t, nodeID+" to start", 20*time.Second, func() bool {
		return strings.Contains(n.logs.String(), "worker started")
	})
	return n
}

// kill stops the process with SIGKILL (no shutdown, no lease given back) and waits
// until it is gone.
func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// recordingsList is the answer of GET /api/v1/recordings.
type recordingsList struct {
	Total      int              `json:"total"`
	Recordings []map[string]any `json:"recordings"`
}

func (n *node) recordings(t *testing.T, query string) recordingsList {
	t.Helper()
	var l recordingsList
	if err := json.Unmarshal(httpBody(t, n.httpURL+"/api/v1/recordings?"+query, ""), &l); err != nil {
		t.Fatalf("%s: recordings: %v", n.id, err)
	}
	return l
}

func (n *node) event(t *testing.T, id string) (jobs.EventRecord, bool) {
	t.Helper()
	resp, err := http.Get(n.httpURL + "/api/v1/events/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rec jobs.EventRecord
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&rec) != nil {
		return rec, false
	}
	return rec, true
}

// delivered reports whether n says the event was delivered, in one attempt.
func (n *node) deliveredOnce(t *testing.T, id string) bool {
	rec, ok := n.event(t, id)
	return ok && rec.State == jobs.StateDelivered && len(rec.Deliveries) == 1 && rec.Deliveries[0].Attempts == 1
}

// pushFixture publishes packets of the av fixture (4 s, a keyframe every second) to
// node n; the publisher stays connected.
func pushFixture(t *testing.T, n *node, streamURL string, pkts []*media.Packet) *mediatest.Publisher {
	t.Helper()
	pub := mediatest.PublishRTMP(t, "rtmp://"+n.rtmpAddr+"/"+streamURL)
	writePackets(t, pub, pkts)
	return pub
}

func writePackets(t *testing.T, pub *mediatest.Publisher, pkts []*media.Packet) {
	t.Helper()
	for _, p := range pkts {
		if err := pub.WritePacket(p); err != nil {
			t.Fatalf("push: %v", err)
		}
	}
}

// mediaFrames counts the video and audio frames of pkts (sequence headers, AVC end of
// sequence and metadata aside): what a push of them must leave in each format's
// recordings.
func mediaFrames(pkts []*media.Packet) (video, audio int) {
	for _, p := range pkts {
		avcEndOfSequence := p.Kind == media.KindVideo && len(p.Body()) >= 2 && p.Body()[0]&0x0f == 7 && p.Body()[1] == 2
		switch {
		case p.SequenceHeader, avcEndOfSequence:
		case p.Kind == media.KindVideo:
			video++
		case p.Kind == media.KindAudio:
			audio++
		}
	}
	return video, audio
}

// pushEventIDs are the ids of the events of stream delivered to rc.
func pushEventIDs(t *testing.T, rc *hookReceiver, stream string) []string {
	t.Helper()
	var ids []string
	for id, ev := range rc.deliveredEvents() {
		if ev.StreamID == stream {
			ids = append(ids, id)
		}
	}
	return ids
}

// The topology test of issue 8: two serve nodes (A ingests and leaves the shared work
// to others, B does everything), two workers. A push to A is recorded by A, uploaded by
// A (its node queue), announced exactly once per event by whichever process took the
// callback, and B's API answers the same as A's: the recordings (from the shared
// catalog index) and the delivery state of every event (from Redis).
func TestTopologyTwoServeTwoWorkers(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	t.Parallel() // beside TestTopologyWorkerKilledMidRetry, which mostly waits
	rc, hookURL := newHookReceiver(t, hookOK)
	tp := newTopology(t, hookURL)
	a := tp.startServe("node-a", "--no-worker")
	b := tp.startServe("node-b")
	w1, w2 := tp.startWorker("worker-1"), tp.startWorker("worker-2")

	pkts := mediatest.ReadFLV(t, filepath.Join("..", "..", "testdata", "av.flv"))
	pub := pushFixture(t, a, "live/topo?record=mp4|flv&record_interval=2", pkts)
	if err := pub.Unpublish(); err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	// 4 s with a keyframe every second, cut every 2 s: 2 fragments per format.
	const recordings = 4
	mediatest.WaitFor(t, "push start, push end and 4 recording callbacks", 60*time.Second, func() bool {
		_, delivered, _ := rc.counts()
		return len(delivered) == recordings+2
	})
	ids := pushEventIDs(t, rc, "topo")

	// Delivery state, from B: every event delivered, in one attempt.
	for _, id := range ids {
		mediatest.WaitFor(t, "B to report "+id+" delivered", 10*time.Second, func() bool { return b.deliveredOnce(t, id) })
	}
	// Each callback was sent by one process, never by A (--no-worker).
	sent := 0
	for _, n := range []*node{b, w1, w2} {
		sent += strings.Count(n.logs.String(), "callback delivered")
	}
	if sent != len(ids) {
		t.Errorf("%d deliveries logged by B and the workers, want %d", sent, len(ids))
	}
	if strings.Contains(a.logs.String(), "callback delivered") {
		t.Error("the --no-worker node A delivered callbacks")
	}
	// Uploaded by A, from its spool: only A logs them, its spool is empty, the entries name it.
	if n := strings.Count(a.logs.String(), "recording stored"); n != recordings {
		t.Errorf("A stored %d recordings, want %d", n, recordings)
	}
	for _, n := range []*node{b, w1, w2} {
		if strings.Contains(n.logs.String(), "recording stored") {
			t.Errorf("%s stored a recording of A's spool", n.id)
		}
	}
	mediatest.WaitFor(t, "A's spool to empty", 10*time.Second, func() bool {
		left, _ := filepath.Glob(filepath.Join(a.dataDir, "spool", "live", "topo", "*", "*"))
		return len(left) == 0
	})

	// B lists what A recorded, with the same fields, and plays it from the bucket.
	onA, onB := a.recordings(t, "stream_id=topo"), b.recordings(t, "stream_id=topo")
	if onB.Total != recordings || !reflect.DeepEqual(onA, onB) {
		t.Fatalf("recordings on A:\n%v\non B:\n%v", onA, onB)
	}
	type frames struct{ video, audio int }
	played := map[any]frames{} // by format
	for _, r := range onB.Recordings {
		id, _ := r["file_id"].(string)
		if r["node_id"] != "node-a" {
			t.Errorf("%s: node_id %v, want node-a", id, r["node_id"])
		}
		ev, ok := rc.deliveredEvents()[jobs.EventID(jobs.EventRecordingReady, id)]
		if !ok || ev.FileFormat != r["format"] || ev.VideoID != r["key"] {
			t.Errorf("%s: recording callback %+v for entry %v", id, ev, r)
		}
		pr := mediatest.ProbeFrames(t, b.httpURL+"/vod/"+r["key"].(string))
		_, _, _, video := pr.Stream("video")
		_, _, _, audio := pr.Stream("audio")
		f := played[r["format"]]
		played[r["format"]] = frames{f.video + video, f.audio + audio}
	}
	// The fragments of each format, played from B, hold every frame pushed to A, once.
	video, audio := mediaFrames(pkts)
	for _, format := range []string{"mp4", "flv"} {
		if got := played[format]; got != (frames{video, audio}) {
			t.Errorf("%s fragments played from B: %d video and %d audio frames, %d and %d pushed", format, got.video, got.audio, video, audio)
		}
	}
	rc.checkOnce(t, ids)
}

// A worker killed (-9) while it holds callbacks in flight and the receiver fails them:
// the other worker delivers every event exactly once — those it finds in the retry set
// at once, those the dead worker held once asynq (v0.25.1) sees their lease expired.
// The lease is 30 s, renewed every 5 s, and the recoverer takes tasks whose lease
// expired 30 s ago, checking at its start and every minute: a worker started after
// the kill recovers them about 60 s later (one started before it, up to 120 s later,
// which is why worker-2 starts after the kill here).
func TestTopologyWorkerKilledMidRetry(t *testing.T) {
	t.Parallel() // mostly waiting for the lease: the other topology tests run meanwhile
	rc, hookURL := newHookReceiver(t, hookFail)
	tp := newTopology(t, hookURL)
	w1 := tp.startWorker("worker-1")

	// Events notified as a serve node does, from a queue that only enqueues.
	cfg := jobs.DefaultConfig()
	cfg.RedisAddr, cfg.NodeID, cfg.Serve = tp.redis.URL(), "test-client", 0
	cfg.CallbackURLs, cfg.CallbackKey = []string{hookURL}, callbackKey
	q, err := jobs.Open(context.Background(), cfg, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var ids []string
	for i := range 8 {
		ev := jobs.Event{StreamID: "kill", App: "live", EventType: jobs.EventPushStarted, EventID: jobs.EventID(jobs.EventPushStarted, fmt.Sprintf("kill_%d", i))}
		if err := q.Notify(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.EventID)
	}
	mediatest.WaitFor(t, "every event failed and retried", 30*time.Second, func() bool {
		attempts, _, _ := rc.counts()
		for _, id := range ids {
			if attempts[id] < 2 {
				return false
			}
		}
		return true
	})
	// Callbacks in flight at the kill: the receiver holds them unanswered.
	rc.setMode(hookHang)
	mediatest.WaitFor(t, "worker-1 to hold callbacks in flight", 30*time.Second, func() bool {
		_, _, hung := rc.counts()
		return hung > 0
	})
	w1.kill()
	mediatest.WaitFor(t, "the dead worker's requests to end", 10*time.Second, func() bool {
		_, _, hung := rc.counts()
		return hung == 0
	})
	active, err := q.Inspector().ListActiveTasks(jobs.QueueCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	inflight := len(active)
	if inflight == 0 {
		t.Fatal("no callback left active by the killed worker: the test proves nothing")
	}
	t.Logf("%d callbacks in flight at the kill", inflight)

	// worker-2 meets a receiver still failing, then one that recovers.
	rc.setMode(hookFail)
	before, _, _ := rc.counts()
	w2 := tp.startWorker("worker-2")
	mediatest.WaitFor(t, "worker-2 to retry failing callbacks", 30*time.Second, func() bool {
		attempts, _, _ := rc.counts()
		for id, n := range attempts {
			if n > before[id] {
				return true
			}
		}
		return false
	})
	rc.setMode(hookOK)
	mediatest.WaitFor(t, "every event delivered (the dead worker's after its lease expired)", 150*time.Second, func() bool {
		_, delivered, _ := rc.counts()
		return len(delivered) == len(ids)
	})
	// Nothing left to send: no callback task waits anywhere.
	mediatest.WaitFor(t, "the callbacks queue to empty", 30*time.Second, func() bool {
		info, err := q.Inspector().GetQueueInfo(jobs.QueueCallbacks)
		return err == nil && info.Pending+info.Active+info.Scheduled+info.Retry == 0
	})
	rc.checkOnce(t, ids)
	if n := strings.Count(w2.logs.String(), "callback delivered"); n != len(ids) {
		t.Errorf("worker-2 logged %d deliveries, want %d", n, len(ids))
	}
	for _, id := range ids {
		if rec, err := q.Event(id); err != nil || rec.State != jobs.StateDelivered {
			t.Errorf("%s: %+v, %v", id, rec, err)
		}
	}
}

// Redis restarted without persistence in the middle of a push: the catalog index comes
// back (the reconcile loop rebuilds it from the bucket), the recordings made before the
// restart are listed on both serve nodes, and every event of the push is delivered,
// once — those delivered before the restart are not sent again.
func TestTopologyRedisRestartMidPush(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	t.Parallel() // beside TestTopologyWorkerKilledMidRetry, which mostly waits
	rc, hookURL := newHookReceiver(t, hookOK)
	tp := newTopology(t, hookURL)
	a := tp.startServe("node-a", "--no-worker")
	b := tp.startServe("node-b")

	// The first fragment (a keyframe at 2 s closes it), its uploads and callbacks.
	pkts := mediatest.ReadFLV(t, filepath.Join("..", "..", "testdata", "av.flv"))
	cut := 0
	for i, p := range pkts {
		if p.Kind == media.KindVideo && p.Keyframe && p.Timestamp == 2000 {
			cut = i + 1
		}
	}
	if cut == 0 {
		t.Fatal("the fixture has no keyframe at 2 s")
	}
	pub := pushFixture(t, a, "live/restart?record=mp4|flv&record_interval=2", pkts[:cut])
	mediatest.WaitFor(t, "the push start and the first fragments delivered", 30*time.Second, func() bool {
		_, delivered, _ := rc.counts()
		return len(delivered) == 3
	})
	// Before the restart, the reconcile has seen them delivered and emptied A's outbox:
	// an event delivered whose record Redis loses before that is sent again (README).
	outboxEmpty := func() bool {
		left, err := os.ReadDir(filepath.Join(a.dataDir, "outbox"))
		return err == nil && len(left) == 0
	}
	mediatest.WaitFor(t, "A's outbox to empty", 10*time.Second, outboxEmpty)
	before := a.recordings(t, "stream_id=restart")
	if before.Total != 2 {
		t.Fatalf("%d recordings before the restart, want 2", before.Total)
	}

	tp.redis.Restart()
	cat := tp.catalog(t)
	mediatest.WaitFor(t, "the catalog index rebuilt", 20*time.Second, func() bool {
		built, err := cat.Built(context.Background())
		return err == nil && built
	})
	for _, n := range []*node{a, b} {
		if got := n.recordings(t, "stream_id=restart"); !reflect.DeepEqual(got, before) {
			t.Errorf("recordings on %s after the restart:\n%v\nbefore:\n%v", n.id, got, before)
		}
	}

	// The rest of the push, on the fresh Redis.
	writePackets(t, pub, pkts[cut:])
	if err := pub.Unpublish(); err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	mediatest.WaitFor(t, "the push end and the last fragments delivered", 60*time.Second, func() bool {
		_, delivered, _ := rc.counts()
		return len(delivered) == 6
	})
	mediatest.WaitFor(t, "A's outbox to empty again", 10*time.Second, outboxEmpty)
	ids := pushEventIDs(t, rc, "restart")
	rc.checkOnce(t, ids)

	onA, onB := a.recordings(t, "stream_id=restart"), b.recordings(t, "stream_id=restart")
	if onA.Total != 4 || !reflect.DeepEqual(onA, onB) {
		t.Errorf("recordings on A:\n%v\non B:\n%v", onA, onB)
	}
	// The index holds all four, by id, without reading the bucket.
	for _, r := range onA.Recordings {
		id := r["file_id"].(string)
		if got, err := cat.Get(context.Background(), id); err != nil || got.NodeID != "node-a" {
			t.Errorf("%s: %+v, %v", id, got, err)
		}
	}
	if n, err := tp.indexEntries(t); err != nil || n != 4 {
		t.Errorf("%d entries in the index, want 4 (%v)", n, err)
	}
}

// catalog opens the topology's catalog, for the test to look at the index.
func (tp *topology) catalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	s := tp.s3
	store, err := storage.NewS3(context.Background(), storage.S3Config{Endpoint: s.Endpoint, Region: s.Region,
		Bucket: s.Bucket, AccessKey: s.AccessKey, SecretKey: s.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	rdb := tp.redisClient(t)
	c, err := catalog.New(catalog.Config{Store: store, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// redisClient is a client of the topology's Redis database, closed when the test ends.
func (tp *topology) redisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(tp.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// indexEntries counts the entries of the catalog index in Redis (storage/catalog's
// doc names its keys).
func (tp *topology) indexEntries(t *testing.T) (int64, error) {
	return tp.redisClient(t).HLen(context.Background(), catalog.DefaultPrefix+"entries").Result()
}

// Idle cost of the roles, for the README's figures: LIVETAPE_BENCH_IDLE=1 go test
// ./cmd/livetape -run TestIdleFootprint -v. Each process runs on a real redis-server
// (serve: embedded, its own miniredis) with the production defaults, idle for
// LIVETAPE_BENCH_IDLE_FOR (default 30 s). LIVETAPE_BENCH_IDLE_BASELINE=PATH runs the
// same roles of another livetape binary at the same time, to compare two builds on a
// noisy machine.
func TestIdleFootprint(t *testing.T) {
	if os.Getenv("LIVETAPE_BENCH_IDLE") == "" {
		t.Skip("a measurement: set LIVETAPE_BENCH_IDLE=1")
	}
	window := 30 * time.Second
	if s := os.Getenv("LIVETAPE_BENCH_IDLE_FOR"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		window = d
	}
	_, hookURL := newHookReceiver(t, hookOK)
	tp := newTopology(t, hookURL)
	// The topology's config shortens the reconcile and retry intervals for its tests.
	if err := os.WriteFile(tp.config, []byte("storage:\n  s3:\n    path_style: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	builds := []struct{ name, bin string }{{"", tp.bin}}
	if b := os.Getenv("LIVETAPE_BENCH_IDLE_BASELINE"); b != "" {
		builds = append(builds, struct{ name, bin string }{"baseline-", b})
	}
	var nodes []*node
	for _, b := range builds {
		tp.bin = b.bin
		nodes = append(nodes, tp.startWorker(b.name+"idle-worker"), tp.startServe(b.name+"idle-serve-redis"),
			tp.startEmbedded(b.name+"idle-serve-embedded"))
	}
	tp.bin = builds[0].bin
	// Measure once start-up is over: every node used less than 5 % of a core over the
	// last half second.
	prev := make([]time.Duration, len(nodes))
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(time.Minute)
	for settled := false; !settled; {
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not settle after start-up within a minute")
		}
		<-tick.C
		settled = true
		for i, n := range nodes {
			c := cpuTime(t, n.cmd.Process.Pid)
			settled = settled && prev[i] > 0 && c-prev[i] < 25*time.Millisecond
			prev[i] = c
		}
	}
	start := make([]time.Duration, len(nodes))
	for i, n := range nodes {
		start[i] = cpuTime(t, n.cmd.Process.Pid)
	}
	select { // the measurement window: CPU time used over a span of wall time
	case <-time.After(window):
	case <-t.Context().Done():
		return
	}
	for i, n := range nodes {
		cpu := cpuTime(t, n.cmd.Process.Pid) - start[i]
		t.Logf("%-29s CPU %.2f%% of a core over %v, RSS %s", n.id, 100*cpu.Seconds()/window.Seconds(), window, rss(t, n.cmd.Process.Pid))
	}
}

// startEmbedded runs `livetape serve` on its embedded queue (no Redis address), with
// the topology's storage and callbacks, and waits until it answers HTTP.
func (tp *topology) startEmbedded(nodeID string) *node {
	t := tp.t
	t.Helper()
	rtmpAddr, httpAddr := freePort(t), freePort(t)
	var env []string
	for _, kv := range tp.env(nodeID) {
		if !strings.HasPrefix(kv, "LIVETAPE_REDIS_ADDR=") {
			env = append(env, kv)
		}
	}
	env = append(env, "LIVETAPE_RTMP_ADDR="+rtmpAddr, "LIVETAPE_HTTP_ADDR="+httpAddr, "LIVETAPE_DATA_DIR="+t.TempDir())
	n := tp.start(nodeID, env, "serve")
	mediatest.WaitFor(t, nodeID+" to answer", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return n
}

// cpuTime is the CPU time (user + system) of process pid so far, from /proc.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// Fields after the command name (which may hold spaces), in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime) // field 14 of proc(5)
	fmt.Sscan(f[12], &stime) // field 15
	const clockTicks = 100   // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// rss is VmRSS of process pid and its anonymous part, from /proc. The rest is file
// pages of the binary and the libraries, which vary with what the page cache holds.
func rss(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	field := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			field[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return field["VmRSS"] + " (anonymous " + field["RssAnon"] + ")"
}
