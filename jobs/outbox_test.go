package jobs

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/redistest"
)

// A Redis restarted without persistence while the receiver is failing forgets every
// pending delivery record and task, and an event notified while it was down never
// reached it: the outbox of the notifying node has them all, and once the receiver
// recovers, reconcile gets each delivered exactly once. The outbox then empties.
func TestOutboxSurvivesRedisRestartedEmpty(t *testing.T) {
	srv := redistest.Start(t) // no persistence: a restart loses everything
	var (
		mu        sync.Mutex
		healthy   bool
		delivered = map[string]int{}
	)
	r := newReceiver(t, func(id string, n int) int {
		mu.Lock()
		defer mu.Unlock()
		if !healthy {
			return http.StatusBadGateway
		}
		delivered[id]++
		return http.StatusOK
	})
	cfg := testConfig(srv.URL(), r.srv.URL)
	cfg.RetryBaseDelay = 50 * time.Millisecond
	dataDir := t.TempDir()
	q := openQueue(t, cfg, dataDir)
	ctx := context.Background()

	before := []Event{recordingEvent("a"), recordingEvent("b")}
	for _, ev := range before {
		if err := q.Notify(ctx, ev); err != nil {
			t.Fatal(err)
		}
		r.await(t, ev.EventID, 10*time.Second) // failed once at least
	}
	srv.Stop()
	down := recordingEvent("down")
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := q.Notify(dctx, down); err == nil {
		t.Fatal("Notify with Redis down succeeded")
	}
	cancel()
	srv.Restart()
	if _, err := q.Event(before[0].EventID); err == nil {
		t.Fatal("test setup: Redis kept its records across the restart")
	}

	mu.Lock()
	healthy = true
	mu.Unlock()
	all := append(before, down)
	waitFor(t, 20*time.Second, "every event delivered after reconcile", func() bool {
		if err := q.ResumePending(ctx); err != nil {
			t.Logf("reconcile: %v", err)
		}
		for _, ev := range all {
			if rec, err := q.Event(ev.EventID); err != nil || rec.State != StateDelivered {
				return false
			}
		}
		return true
	})
	// More reconciles, and a barrier event behind them: nothing is sent again, and the
	// outbox forgets delivered events.
	for range 3 {
		if err := q.ResumePending(ctx); err != nil {
			t.Fatal(err)
		}
	}
	barrier(t, q, r, "outbox")
	if err := q.ResumePending(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, ev := range all {
		if n := delivered[ev.EventID]; n != 1 {
			t.Errorf("%s delivered %d times, want once", ev.EventID, n)
		}
	}
	mu.Unlock()
	left, _ := os.ReadDir(filepath.Join(dataDir, "outbox"))
	if len(left) != 0 {
		t.Errorf("outbox keeps %d files of delivered events", len(left))
	}
}

// Defer keeps an event without touching Redis; the next reconcile sends it.
func TestDeferThenReconcile(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			r := newReceiver(t, nil)
			addr, _ := be.start(t)
			q := openQueue(t, testConfig(addr, r.srv.URL), t.TempDir())
			ev := recordingEvent("deferred")
			if err := q.Defer(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			if err := q.ResumePending(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.await(t, ev.EventID, 10*time.Second)
			waitState(t, q, ev.EventID, StateDelivered)
		})
	}
}
