package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/livetape/livetape/internal/redistest"
)

// barrier notifies one more event and waits for it: with one worker, any
// duplicate of an earlier, already processed task would have arrived first.
func barrier(t *testing.T, q *Queue, r *receiver, name string) {
	t.Helper()
	ev := recordingEvent("barrier-" + name)
	if err := q.Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	r.await(t, ev.EventID, 10*time.Second)
	waitState(t, q, ev.EventID, StateDelivered)
}

func TestNotifyDeliversSignedEvent(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			r := newReceiver(t, nil)
			cfg := testConfig(addr, r.srv.URL+"/hook")
			cfg.Concurrency = 1
			q := openQueue(t, cfg, t.TempDir())

			ev := recordingEvent("9192487266581821586")
			if err := q.Notify(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			got := r.await(t, ev.EventID, 10*time.Second)
			if err := VerifyCallback(testKey, got.body, got.header, time.Now()); err != nil {
				t.Errorf("VerifyCallback: %v", err)
			}
			if err := VerifyCallback("another key", got.body, got.header, time.Now()); !errors.Is(err, ErrCallbackSignature) {
				t.Errorf("VerifyCallback with a wrong key: %v, want ErrCallbackSignature", err)
			}
			if h := got.header.Get(HeaderEventID); h != ev.EventID {
				t.Errorf("%s = %q, want %q", HeaderEventID, h, ev.EventID)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}

			var fields map[string]any
			if err := json.Unmarshal(got.body, &fields); err != nil {
				t.Fatal(err)
			}
			want := []string{"app", "channel_id", "duration", "end_time", "event_id", "event_type",
				"file_format", "file_id", "file_size", "sign", "start_time", "stream_id",
				"stream_param", "t", "video_id", "video_url"}
			keys := make([]string, 0, len(fields))
			for k := range fields {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, want) {
				t.Errorf("JSON fields\n got %v\nwant %v", keys, want)
			}
			if fields["event_type"] != 100.0 || fields["file_id"] != ev.FileID || fields["duration"] != 1800.0 {
				t.Errorf("body %s", got.body)
			}
			tt := int64(fields["t"].(float64))
			if d := time.Until(time.Unix(tt, 0)); d < 590*time.Second || d > 610*time.Second {
				t.Errorf("t is %v from now, want 600 s", d)
			}
			if fields["sign"] != lvbSign(testKey, tt) {
				t.Errorf("sign %v, want MD5(key + t)", fields["sign"])
			}

			rec := waitState(t, q, ev.EventID, StateDelivered)
			d := rec.Deliveries[0]
			if d.Attempts != 1 || d.DeliveredAt == nil || d.LastError != "" {
				t.Errorf("delivery %+v", d)
			}
			barrier(t, q, r, "once")
			if n := r.count(ev.EventID); n != 1 {
				t.Errorf("received %d times, want once", n)
			}
		})
	}
}

// A receiver failing twice gets the event exactly three times, and the
// event ends delivered.
func TestNotifyRetriesUntilDelivered(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			r := newReceiver(t, func(id string, n int) int {
				if strings.HasPrefix(id, "100-retry") && n < 2 {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			})
			cfg := testConfig(addr, r.srv.URL)
			cfg.Concurrency = 1
			q := openQueue(t, cfg, t.TempDir())

			ev := recordingEvent("retry")
			if err := q.Notify(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			var ts []int64
			for range 3 {
				got := r.await(t, ev.EventID, 10*time.Second)
				if err := VerifyCallback(testKey, got.body, got.header, time.Now()); err != nil {
					t.Errorf("VerifyCallback: %v", err)
				}
				ts = append(ts, got.ev.T)
			}
			rec := waitState(t, q, ev.EventID, StateDelivered)
			if d := rec.Deliveries[0]; d.Attempts != 3 || d.LastError != "" || d.DeliveredAt == nil {
				t.Errorf("delivery %+v", d)
			}
			barrier(t, q, r, "retry")
			if n := r.count(ev.EventID); n != 3 {
				t.Errorf("received %d times, want 3", n)
			}
			if !slices.IsSorted(ts) {
				t.Errorf("t of the attempts %v: not refreshed per attempt", ts)
			}
		})
	}
}

// A receiver that never answers 2xx is given up after CallbackRetryFor, and
// the event is marked failed with the last error; other URLs are not held up.
func TestNotifyGivesUp(t *testing.T) {
	addr, _ := backends[0].start(t)
	bad := newReceiver(t, nil)
	good := newReceiver(t, nil)
	cfg := testConfig(addr, bad.srv.URL, good.srv.URL)
	// A window no test run reaches: the test ends it itself, so the number of
	// attempts depends on a condition, not on how fast a busy machine retries.
	cfg.CallbackRetryFor = time.Hour
	q := openQueue(t, cfg, t.TempDir())
	const endWindowAt = 1 // 0-based request after which the window is over
	bad.setStatus(func(id string, n int) int {
		if n == endWindowAt {
			// Move the delivery's window start back past CallbackRetryFor, as if
			// it had been retried for an hour: the next attempt reads it.
			_, err := q.events.update(context.Background(), id, func(r *EventRecord) error {
				r.Deliveries[0].RetryingSince = r.Deliveries[0].RetryingSince.Add(-2 * cfg.CallbackRetryFor)
				return nil
			})
			if err != nil {
				t.Errorf("end the retry window: %v", err)
			}
		}
		return http.StatusServiceUnavailable
	})

	ev := recordingEvent("hopeless")
	if err := q.Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	good.await(t, ev.EventID, 10*time.Second)
	rec := waitState(t, q, ev.EventID, StateFailed)
	// Request endWindowAt was handled with the record read before the window
	// ended; the one after it reads the ended window and gives up.
	const wantAttempts = endWindowAt + 2
	d := rec.Deliveries[0]
	if d.State != StateFailed || d.Attempts != wantAttempts || !strings.Contains(d.LastError, "503") {
		t.Errorf("bad receiver: %+v, want failed after %d attempts with the 503", d, wantAttempts)
	}
	if n := bad.count(ev.EventID); n != d.Attempts {
		t.Errorf("bad receiver got %d requests, the record says %d attempts", n, d.Attempts)
	}
	if d := rec.Deliveries[1]; d.State != StateDelivered || d.Attempts != 1 {
		t.Errorf("good receiver: %+v", d)
	}
	pending, err := q.PendingEvents()
	if err != nil || len(pending) != 0 {
		t.Errorf("PendingEvents = %v, %v; want none", pending, err)
	}
}

func TestNotifyDuplicateEnqueuesOnce(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			r := newReceiver(t, nil)
			cfg := testConfig(addr, r.srv.URL)
			cfg.Concurrency = 1
			ctx := context.Background()
			q, err := Open(ctx, cfg, t.TempDir(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close() })

			// Before Start: the second Notify meets the queued task.
			ev := recordingEvent("dup")
			for range 3 {
				if err := q.Notify(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			tasks, err := q.Inspector().ListPendingTasks(QueueCallbacks)
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != 1 || tasks[0].ID != "notify:100-dup:0" {
				t.Fatalf("pending tasks %v, want the one task notify:100-dup:0", tasks)
			}
			if err := q.Start(); err != nil {
				t.Fatal(err)
			}
			r.await(t, ev.EventID, 10*time.Second)
			waitState(t, q, ev.EventID, StateDelivered)

			// After delivery: the record says it is done.
			if err := q.Notify(ctx, ev); err != nil {
				t.Fatal(err)
			}
			barrier(t, q, r, "dup")
			if n := r.count(ev.EventID); n != 1 {
				t.Errorf("received %d times, want once", n)
			}
		})
	}
}

func TestRedeliver(t *testing.T) {
	addr, _ := backends[0].start(t)
	r := newReceiver(t, nil)
	cfg := testConfig(addr, r.srv.URL)
	cfg.Concurrency = 1
	q := openQueue(t, cfg, t.TempDir())
	ctx := context.Background()

	ev := recordingEvent("again")
	if err := q.Notify(ctx, ev); err != nil {
		t.Fatal(err)
	}
	first := r.await(t, ev.EventID, 10*time.Second)
	waitState(t, q, ev.EventID, StateDelivered)

	if err := q.Redeliver(ctx, ev.EventID); err != nil {
		t.Fatal(err)
	}
	second := r.await(t, ev.EventID, 10*time.Second)
	if err := VerifyCallback(testKey, second.body, second.header, time.Now()); err != nil {
		t.Error(err)
	}
	if first.ev.EventID != second.ev.EventID || first.ev.FileID != second.ev.FileID {
		t.Errorf("redelivered %s, first %s", second.body, first.body)
	}
	rec := waitState(t, q, ev.EventID, StateDelivered)
	if rec.Redeliveries != 1 || rec.Deliveries[0].Attempts != 2 || rec.Deliveries[0].TaskID != "notify:100-again:0:r1" {
		t.Errorf("record %+v", rec)
	}
	barrier(t, q, r, "redeliver")
	if n := r.count(ev.EventID); n != 2 {
		t.Errorf("received %d times, want 2", n)
	}

	if err := q.Redeliver(ctx, "100-unknown"); !errors.Is(err, ErrEventNotFound) {
		t.Errorf("Redeliver(unknown) = %v, want ErrEventNotFound", err)
	}
	if err := q.Redeliver(ctx, "../../etc/passwd"); !errors.Is(err, ErrEventNotFound) {
		t.Errorf("Redeliver(../../etc/passwd) = %v, want ErrEventNotFound", err)
	}
}

// redis-server restarted, with its append-only file as a deployment runs it,
// while one event is retrying and while another is notified: the queue
// reconnects, the records and the retrying task come back with Redis, and
// nothing delivered is sent again. (A Redis restarted without persistence
// loses the callback records with the tasks: with a shared Redis it is the
// one place they are kept.)
func TestRedisRestartLosesNothing(t *testing.T) {
	srv := redistest.StartAOF(t)
	r := newReceiver(t, func(id string, n int) int {
		if id == "100-stuck" {
			return http.StatusBadGateway // until the test changes its mind
		}
		return http.StatusOK
	})
	cfg := testConfig(srv.URL(), r.srv.URL)
	cfg.RetryBaseDelay = 200 * time.Millisecond
	q := openQueue(t, cfg, t.TempDir())
	ctx := context.Background()

	before := recordingEvent("before")
	if err := q.Notify(ctx, before); err != nil {
		t.Fatal(err)
	}
	r.await(t, before.EventID, 10*time.Second)
	waitState(t, q, before.EventID, StateDelivered)

	// stuck is retrying (its task waits in Redis' retry set) when Redis
	// goes away.
	stuck := recordingEvent("stuck")
	if err := q.Notify(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	r.await(t, stuck.EventID, 10*time.Second)
	// Stop Redis while the task waits in the retry set, not while a worker holds it:
	// a task active when Redis goes away is only recovered once its lease expires
	// (asynq: a minute or two), which a loaded machine made this test wait for.
	waitFor(t, 30*time.Second, "the stuck callback in the retry set", func() bool {
		info, err := q.Inspector().GetTaskInfo(QueueCallbacks, notifyTaskID(stuck.EventID, 0, 0))
		// With time to spare before it is due (the backoff doubles: 0.2, 0.4, 0.8 s…).
		return err == nil && info.State == asynq.TaskStateRetry && time.Until(info.NextProcessAt) > 500*time.Millisecond
	})

	srv.Stop()
	// Notify while Redis is down: the error says so, and the caller
	// notifies again (the upload task, by its retry).
	down := recordingEvent("down")
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := q.Notify(dctx, down)
	cancel()
	if err == nil {
		t.Fatal("Notify with Redis down succeeded")
	}
	t.Logf("Notify with Redis down: %v", err)

	srv.Restart()
	r.setStatus(nil)
	waitFor(t, 10*time.Second, "Notify after the restart", func() bool {
		return q.Notify(ctx, down) == nil
	})
	waitState(t, q, stuck.EventID, StateDelivered)
	waitState(t, q, down.EventID, StateDelivered)

	if err := q.ResumePending(ctx); err != nil {
		t.Fatal(err)
	}
	barrier(t, q, r, "restart")
	for _, id := range []string{before.EventID, down.EventID} {
		if n := r.count(id); n != 1 {
			t.Errorf("%s received %d times, want once", id, n)
		}
	}
}

// The embedded queue forgets its tasks when livetape stops; the event files
// do not, and ResumePending delivers them after the restart.
func TestEmbeddedReopenDeliversPending(t *testing.T) {
	r := newReceiver(t, func(string, int) int { return http.StatusServiceUnavailable })
	cfg := testConfig("", r.srv.URL)
	cfg.RetryBaseDelay = 10 * time.Second // no retry before the Close below
	dir := t.TempDir()
	ctx := context.Background()

	q, err := Open(ctx, cfg, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	tried := recordingEvent("tried")
	if err := q.Notify(ctx, tried); err != nil {
		t.Fatal(err)
	}
	r.await(t, tried.EventID, 10*time.Second)
	waitFor(t, 10*time.Second, "the failed attempt recorded", func() bool {
		rec, err := q.Event(tried.EventID)
		return err == nil && rec.Deliveries[0].Attempts == 1
	})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Stored while the workers of a second run are not started yet, then
	// that run is stopped too.
	q2, err := Open(ctx, cfg, dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	queued := recordingEvent("queued")
	if err := q2.Notify(ctx, queued); err != nil {
		t.Fatal(err)
	}
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}

	r.setStatus(nil)
	q3 := openQueue(t, cfg, dir)
	if err := q3.ResumePending(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{tried.EventID, queued.EventID} {
		rec := waitState(t, q3, id, StateDelivered)
		t.Logf("%s: %d attempts", id, rec.Deliveries[0].Attempts)
	}
	if n := r.count(queued.EventID); n != 1 {
		t.Errorf("%s received %d times, want once", queued.EventID, n)
	}
	if n := r.count(tried.EventID); n != 2 {
		t.Errorf("%s received %d times, want 2 (failed, then after the restart)", tried.EventID, n)
	}
}

func TestNotifyRejectsBadEventID(t *testing.T) {
	r := newReceiver(t, nil)
	q := openQueue(t, testConfig("", r.srv.URL), t.TempDir())
	for _, id := range []string{"", "../x", ".hidden", "a/b", "a b", strings.Repeat("x", 201)} {
		ev := recordingEvent("x")
		ev.EventID = id
		if err := q.Notify(context.Background(), ev); err == nil {
			t.Errorf("Notify(event_id %q) succeeded", id)
		}
	}
}

func TestOpenFailsWithoutRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// A port nobody listens on: take a free one and release it.
	addr, srv := backends[0].start(t)
	srv.Stop()
	_, err := Open(ctx, testConfig(addr), t.TempDir(), testLogger(t))
	if err == nil {
		t.Fatal("Open succeeded without Redis")
	}
	t.Log(err)
}

// A task this process queues for itself runs at once, and so does its retry when it
// is due, however seldom the idle workers poll: the queue wakes them (patches 1-3 of
// third_party/asynq). The poll here is an hour; the deadlines are seconds.
func TestOwnTasksDoNotWaitForThePoll(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			r := newReceiver(t, func(id string, n int) int {
				if id == EventID(EventRecordingReady, "flaky") && n == 0 {
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			})
			cfg := testConfig(addr, r.srv.URL)
			cfg.PollInterval = time.Hour
			q := openQueue(t, cfg, t.TempDir())
			ctx := context.Background()
			// The first task, queued as the workers start, leaves them idle
			// after it: the others are queued while they wait.
			for _, fileID := range []string{"first", "second", "third"} {
				ev := recordingEvent(fileID)
				if err := q.Notify(ctx, ev); err != nil {
					t.Fatal(err)
				}
				r.await(t, ev.EventID, 10*time.Second)
			}
			flaky := recordingEvent("flaky")
			if err := q.Notify(ctx, flaky); err != nil {
				t.Fatal(err)
			}
			r.await(t, flaky.EventID, 10*time.Second) // answered 503
			r.await(t, flaky.EventID, 10*time.Second) // the retry, RetryBaseDelay later
			waitState(t, q, flaky.EventID, StateDelivered)
		})
	}
}
