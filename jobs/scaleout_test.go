package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/livetape/livetape/storage"
)

// openNode opens (without starting) the queue of one process of a
// deployment on the Redis at addr: node nodeID serving the queues of serve.
func openNode(t testing.TB, addr, nodeID string, serve Serve, concurrency int, urls ...string) *Queue {
	t.Helper()
	cfg := testConfig(addr, urls...)
	cfg.NodeID = nodeID
	cfg.Serve = serve
	cfg.Concurrency = concurrency
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func start(t testing.TB, q *Queue) {
	t.Helper()
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
}

// countingHandler counts the tasks it runs.
type countingHandler struct {
	h    asynq.Handler
	runs atomic.Int32
}

func (c *countingHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	c.runs.Add(1)
	return c.h.ProcessTask(ctx, t)
}

// registerUploader gives q an uploader on spool, storing into store, and
// returns its run counter.
func registerUploader(t testing.TB, q *Queue, store storage.Store, spool *diskSpool) *countingHandler {
	h := &countingHandler{h: &Uploader{Store: store, Catalog: testCatalog(t, q, store), Queue: q, Spool: spool, PublicURL: "http://vod.example", Log: testLogger(t)}}
	q.Register(TaskUpload, h)
	return h
}

func TestQueuesOfEachRole(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID = "edge-1"
	for _, c := range []struct {
		serve Serve
		want  map[string]int
	}{
		{ServeAll, map[string]int{"node:edge-1": 3, "callbacks": 6, "cpu": 1}},
		{ServeNode, map[string]int{"node:edge-1": 3}},
		{ServeShared, map[string]int{"callbacks": 6, "cpu": 1}},
		{0, map[string]int{}},
	} {
		cfg.Serve = c.serve
		got := queues(cfg)
		if len(got) != len(c.want) {
			t.Errorf("serve %b: queues %v, want %v", c.serve, got, c.want)
		}
		for q, w := range c.want {
			if got[q] != w {
				t.Errorf("serve %b: queues %v, want %v", c.serve, got, c.want)
			}
		}
	}
}

// Two serve nodes on one Redis: a fragment recorded by node a waits in a's
// queue, which node b never takes, even while b works on its own uploads and
// the callbacks; once a runs, a uploads it from its own spool and b (the
// only shared worker) delivers the callback.
func TestUploadRunsOnTheNodeThatRecorded(t *testing.T) {
	addr, _ := backends[0].start(t)
	rc := newReceiver(t, nil)
	bucket := storage.Local{Dir: t.TempDir()}
	ctx := context.Background()

	a := openNode(t, addr, "a", ServeNode, 1, rc.srv.URL)
	spoolA := newDiskSpool(t)
	runsA := registerUploader(t, a, bucket, spoolA)
	b := openNode(t, addr, "b", ServeAll, 1, rc.srv.URL)
	spoolB := newDiskSpool(t)
	runsB := registerUploader(t, b, bucket, spoolB)
	start(t, b)

	recA := testRecording(1, "flv")
	spoolA.add(t, handleOf("a", recA), map[string][]byte{"": []byte("recorded on a")})
	if err := a.EnqueueUpload(ctx, recA); err != nil {
		t.Fatal(err)
	}
	recB := testRecording(2, "flv")
	spoolB.add(t, handleOf("b", recB), map[string][]byte{"": []byte("recorded on b")})
	if err := b.EnqueueUpload(ctx, recB); err != nil {
		t.Fatal(err)
	}
	rc.await(t, EventID(EventRecordingReady, recB.FileID), 10*time.Second)
	info, err := b.Inspector().GetTaskInfo(NodeQueue("a"), "upload:"+recA.FileID)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStatePending || runsB.runs.Load() != 1 || !spoolA.has(handleOf("a", recA)) {
		t.Fatalf("a's upload is %v, node b ran %d uploads: want it pending in a's queue and b to have run only its own",
			info.State, runsB.runs.Load())
	}

	start(t, a)
	got := rc.await(t, EventID(EventRecordingReady, recA.FileID), 10*time.Second)
	if got.ev.FileSize != int64(len("recorded on a")) || spoolA.has(handleOf("a", recA)) || runsA.runs.Load() != 1 {
		t.Errorf("event %+v, a ran %d uploads, still in a's spool: %v", got.ev, runsA.runs.Load(), spoolA.has(handleOf("a", recA)))
	}
}

// A task whose id says "do this once" and that completed is kept: enqueued
// again (a reconcile that read the spool just before the upload removed the
// fragment, or the pending events just before a delivery), it does not run.
func TestCompletedTaskNotRunAgain(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			rc := newReceiver(t, nil)
			q := openNode(t, addr, "a", ServeAll, 1, rc.srv.URL)
			spool := newDiskSpool(t)
			uploads := registerUploader(t, q, storage.Local{Dir: t.TempDir()}, spool)
			start(t, q)
			ctx := context.Background()

			rec := testRecording(1, "flv")
			h := handleOf("a", rec)
			spool.add(t, h, map[string][]byte{"": []byte("first")})
			if err := q.EnqueueUpload(ctx, rec); err != nil {
				t.Fatal(err)
			}
			ready := EventID(EventRecordingReady, rec.FileID)
			rc.await(t, ready, 10*time.Second)
			for _, task := range []struct{ queue, id string }{
				{NodeQueue("a"), "upload:" + rec.FileID},
				{QueueCallbacks, notifyTaskID(ready, 0, 0)},
			} {
				waitFor(t, 10*time.Second, task.id+" completed", func() bool {
					info, err := q.Inspector().GetTaskInfo(task.queue, task.id)
					if errors.Is(err, asynq.ErrTaskNotFound) {
						return true // done and forgotten: what retention prevents
					}
					return err == nil && info.State == asynq.TaskStateCompleted
				})
			}

			// The same fragment seen again by a reconcile, and the same
			// delivery task queued again past its record.
			spool.add(t, h, map[string][]byte{"": []byte("second")})
			if err := q.EnqueueUpload(ctx, rec); err != nil {
				t.Fatal(err)
			}
			payload, _ := json.Marshal(notifyPayload{Event: recordingEvent(rec.FileID), URL: rc.srv.URL})
			created, err := q.enqueue(ctx, asynq.NewTask(TaskNotify, payload),
				asynq.Queue(QueueCallbacks), asynq.TaskID(notifyTaskID(ready, 0, 0)))
			if err != nil || created {
				t.Errorf("notify task enqueued again: created %v, %v; want refused", created, err)
			}

			// One worker takes its queue in order: a second run of the
			// upload would come before this one.
			next := testRecording(2, "flv")
			spool.add(t, handleOf("a", next), map[string][]byte{"": []byte("next")})
			if err := q.EnqueueUpload(ctx, next); err != nil {
				t.Fatal(err)
			}
			rc.await(t, EventID(EventRecordingReady, next.FileID), 10*time.Second)
			if n := uploads.runs.Load(); n != 2 || !spool.has(h) || rc.count(ready) != 1 {
				t.Errorf("%d upload runs, fragment left in the spool %v, %d callbacks: want 2 runs, the fragment untouched, 1 callback",
					n, spool.has(h), rc.count(ready))
			}
		})
	}
}

// Two serve nodes that do not deliver callbacks (--no-worker) and one
// worker on one Redis: what node a notifies, the worker delivers, node b
// reports as delivered, and a reconcile on a sends nothing again.
func TestEventStateSharedAcrossNodes(t *testing.T) {
	addr, _ := backends[0].start(t)
	rc := newReceiver(t, nil)
	ctx := context.Background()
	a := openNode(t, addr, "a", ServeNode, 1, rc.srv.URL)
	b := openNode(t, addr, "b", ServeNode, 1, rc.srv.URL)
	worker := openNode(t, addr, "w", ServeShared, 1, rc.srv.URL)
	start(t, a)
	start(t, b)
	start(t, worker)

	var ids []string
	for _, name := range []string{"e1", "e2", "e3"} {
		ev := recordingEvent(name)
		if err := a.Notify(ctx, ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.EventID)
	}
	for _, id := range ids {
		rec := waitState(t, b, id, StateDelivered)
		if d := rec.Deliveries[0]; d.Attempts != 1 || d.DeliveredAt == nil {
			t.Errorf("%s as node b sees it: %+v", id, d)
		}
	}
	pending, err := a.PendingEvents()
	if err != nil || len(pending) != 0 {
		t.Errorf("node a: pending events %v, %v; want none", pending, err)
	}
	if err := a.ResumePending(ctx); err != nil {
		t.Fatal(err)
	}
	// The worker takes the callbacks in order, one at a time: anything
	// ResumePending queued would arrive before this.
	barrier(t, a, rc, "shared")
	for _, id := range ids {
		if n := rc.count(id); n != 1 {
			t.Errorf("%s received %d times, want once", id, n)
		}
	}
	// Nothing of the events is kept on the nodes' disks.
	for _, q := range []*Queue{a, b} {
		if _, ok := q.events.(*redisEventStore); !ok {
			t.Errorf("node %s keeps its events in %T, want Redis", q.NodeID(), q.events)
		}
	}
}

// Two workers; the one that made the first, failed attempt stops while the
// callback is retrying; the other retries it and delivers it, once.
func TestWorkerStopsWhileCallbackRetries(t *testing.T) {
	addr, _ := backends[0].start(t)
	var accept atomic.Bool
	var delivered atomic.Int32
	rc := newReceiver(t, func(id string, n int) int {
		if !accept.Load() {
			return http.StatusServiceUnavailable
		}
		delivered.Add(1)
		return http.StatusOK
	})
	ctx := context.Background()
	node := openNode(t, addr, "a", 0, 1, rc.srv.URL) // only notifies
	w1 := openNode(t, addr, "w1", ServeShared, 1, rc.srv.URL)
	start(t, w1)

	ev := recordingEvent("retrying")
	if err := node.Notify(ctx, ev); err != nil {
		t.Fatal(err)
	}
	rc.await(t, ev.EventID, 10*time.Second) // w1's attempt: w2 is not there yet
	w2 := openNode(t, addr, "w2", ServeShared, 1, rc.srv.URL)
	start(t, w2)
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	before := rc.count(ev.EventID) // w1 is stopped: no more attempts from it
	waitFor(t, 10*time.Second, "w2 retrying", func() bool { return rc.count(ev.EventID) > before })
	accept.Store(true)
	rec := waitState(t, node, ev.EventID, StateDelivered)
	barrier(t, node, rc, "failover")
	if n := delivered.Load(); n != 2 { // the event and the barrier
		t.Errorf("%d requests answered 200, want 2: the event once and the barrier", n)
	}
	if rec.Deliveries[0].Attempts != rc.count(ev.EventID) || rc.count(ev.EventID) <= before {
		t.Errorf("record says %d attempts, receiver got %d (%d before w1 stopped)",
			rec.Deliveries[0].Attempts, rc.count(ev.EventID), before)
	}
}

// With a shared Redis the event store is not in the data dir: a worker needs
// none, and a node's data dir holds only its spool.
func TestSharedRedisNeedsNoDataDir(t *testing.T) {
	addr, _ := backends[0].start(t)
	cfg := testConfig(addr)
	cfg.Serve = ServeShared
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	q.Close()

	dir := t.TempDir()
	q2, err := Open(ctx, testConfig(addr), dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	q2.Close()
	if _, err := os.Stat(filepath.Join(dir, "events")); !os.IsNotExist(err) {
		t.Errorf("data dir has an events folder with a shared Redis: %v", err)
	}
	if _, err := Open(ctx, testConfig(""), "", testLogger(t)); err == nil {
		t.Error("the embedded queue opened without a data dir for its events")
	}
}

// At shutdown a node finishes the uploads queued for its spool before it
// closes the queue: DrainNode returns once they are done, and says so when
// its deadline comes first.
func TestDrainNode(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			rc := newReceiver(t, nil)
			q := openNode(t, addr, "a", ServeAll, 1, rc.srv.URL)
			spool := newDiskSpool(t)
			registerUploader(t, q, storage.Local{Dir: t.TempDir()}, spool)
			ctx := context.Background()
			if err := q.DrainNode(ctx); err != nil {
				t.Fatalf("DrainNode before any upload: %v", err)
			}

			var handles []FragmentHandle
			for i := range 5 {
				rec := testRecording(i, "flv")
				handles = append(handles, handleOf("a", rec))
				spool.add(t, handles[i], map[string][]byte{"": []byte("fragment")})
				if err := q.EnqueueUpload(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			err := q.DrainNode(short) // the workers are not started: nothing moves
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 uploads left") {
				t.Errorf("DrainNode with the workers stopped: %v, want 5 uploads left and the deadline", err)
			}

			start(t, q)
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := q.DrainNode(dctx); err != nil {
				t.Fatal(err)
			}
			for _, h := range handles {
				if spool.has(h) {
					t.Errorf("%s still in the spool after DrainNode", h)
				}
			}
		})
	}
}

// Open given up by its caller (serve stopped while starting) returns an
// error; it used to panic naming the embedded Redis it had just stopped.
func TestOpenEmbeddedCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	failed := 0
	for range 20 { // ping races the cancelled context
		q, err := Open(ctx, testConfig(""), t.TempDir(), testLogger(t))
		if err != nil {
			failed++
			continue
		}
		q.Close()
	}
	if failed == 0 {
		t.Skip("ping won every race against the cancelled context")
	}
}
