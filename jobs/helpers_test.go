package jobs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/redistest"
)

const testKey = "callback-key-for-tests"

// received is one request a receiver got.
type received struct {
	body   []byte
	header http.Header
	at     time.Time
	ev     Event
}

// receiver is an httptest callback receiver. status decides the answer to
// the n-th request (0-based) for an event id; nil answers 200.
type receiver struct {
	srv *httptest.Server
	ch  chan received

	mu     sync.Mutex
	all    []received
	byID   map[string]int
	status func(eventID string, n int) int
}

func newReceiver(t testing.TB, status func(eventID string, n int) int) *receiver {
	t.Helper()
	r := &receiver{ch: make(chan received, 10000), byID: map[string]int{}, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rc := received{body: body, header: req.Header.Clone(), at: time.Now()}
		json.Unmarshal(body, &rc.ev)
		r.mu.Lock()
		n := r.byID[rc.ev.EventID]
		r.byID[rc.ev.EventID]++
		r.all = append(r.all, rc)
		st := http.StatusOK
		if r.status != nil {
			st = r.status(rc.ev.EventID, n)
		}
		r.mu.Unlock()
		w.WriteHeader(st)
		io.WriteString(w, http.StatusText(st))
		r.ch <- rc
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setStatus(f func(eventID string, n int) int) {
	r.mu.Lock()
	r.status = f
	r.mu.Unlock()
}

// count is how many requests for id arrived.
func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// await waits for the next request for id.
func (r *receiver) await(t testing.TB, id string, timeout time.Duration) received {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case rc := <-r.ch:
			if rc.ev.EventID == id {
				return rc
			}
		case <-deadline:
			t.Fatalf("no callback for %s within %v (%d received for it)", id, timeout, r.count(id))
		}
	}
}

// testConfig retries within tens of milliseconds, so that a test sees
// several attempts in well under a second.
func testConfig(redisAddr string, urls ...string) Config {
	cfg := DefaultConfig()
	cfg.RedisAddr = redisAddr
	cfg.NodeID = "node-a"
	cfg.CallbackURLs = urls
	cfg.CallbackKey = testKey
	cfg.CallbackTimeout = 2 * time.Second
	cfg.CallbackRetryFor = time.Minute
	cfg.RetryBaseDelay = 20 * time.Millisecond
	cfg.PollInterval = 20 * time.Millisecond
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("LIVETAPE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// openQueue opens and starts a queue that closes when the test ends.
func openQueue(t testing.TB, cfg Config, dataDir string) *Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, dataDir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	return q
}

// backend is a Redis for the queue: a real redis-server or the embedded one.
type backend struct {
	name  string
	start func(t testing.TB) (addr string, srv *redistest.Server)
}

var backends = []backend{
	{"redis-server", func(t testing.TB) (string, *redistest.Server) {
		s := redistest.Start(t)
		return s.URL(), s
	}},
	{"embedded", func(testing.TB) (string, *redistest.Server) { return "", nil }},
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// waitState waits until the stored event reaches state.
func waitState(t testing.TB, q *Queue, id string, state DeliveryState) EventRecord {
	t.Helper()
	var rec EventRecord
	// A deadline, not a wait: long enough for a callback that was retrying (its
	// backoff doubles from RetryBaseDelay) through an outage on a loaded machine.
	waitFor(t, 30*time.Second, "event "+id+" "+string(state), func() bool {
		var err error
		rec, err = q.Event(id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.State == state
	})
	return rec
}

// recordingEvent is an event 100 as the upload task will send it.
func recordingEvent(fileID string) Event {
	return Event{
		ChannelID:   "demo",
		StreamID:    "demo",
		App:         "live",
		EventType:   EventRecordingReady,
		EventID:     EventID(EventRecordingReady, fileID),
		FileID:      fileID,
		FileFormat:  "mp4",
		FileSize:    9749353,
		StartTime:   1473125627,
		EndTime:     1473127427,
		Duration:    1800,
		VideoID:     "live/demo/1473125627_" + fileID + ".mp4",
		VideoURL:    "http://127.0.0.1:8080/vod/live/demo/1473125627_" + fileID + ".mp4",
		StreamParam: "foo=bar&record=mp4", // as stored: without txSecret/txTime
	}
}
