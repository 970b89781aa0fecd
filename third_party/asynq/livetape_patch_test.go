package asynq

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq/internal/base"
	asynqerrors "github.com/hibiken/asynq/internal/errors"
)

// Tests of livetape's patches (PATCHES.md). Every server here polls once an
// hour: what they check must happen because of a wake-up, not because a poll
// came round. The deadlines are generous; the poll they replace is 30 min at
// least.

const livetapeSlowPoll = time.Hour

// idleSignal is a broker that says when a dequeue found nothing, after which
// the processor waits for its next poll.
type idleSignal struct {
	base.Broker
	idle chan struct{}
}

func (b *idleSignal) Dequeue(qnames ...string) (*base.TaskMessage, time.Time, error) {
	msg, lease, err := b.Broker.Dequeue(qnames...)
	if errors.Is(err, asynqerrors.ErrNoProcessableTask) {
		select {
		case b.idle <- struct{}{}:
		default:
		}
	}
	return msg, lease, err
}

// livetapeServer starts a server that polls once an hour, runs h, and reports
// on the returned channel each time its processor goes idle.
func livetapeServer(t *testing.T, cfg Config, h HandlerFunc) (*Server, <-chan struct{}) {
	t.Helper()
	setup(t)
	cfg.TaskCheckInterval = livetapeSlowPoll
	if cfg.DelayedTaskCheckInterval == 0 {
		cfg.DelayedTaskCheckInterval = livetapeSlowPoll
	}
	cfg.LogLevel = testLogLevel
	srv := NewServer(getRedisConnOpt(t), cfg)
	sig := &idleSignal{Broker: srv.processor.broker, idle: make(chan struct{}, 1)}
	srv.processor.broker = sig
	if err := srv.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, sig.idle
}

func waitIdle(t *testing.T, idle <-chan struct{}) {
	t.Helper()
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("the processor never found its queues empty")
	}
}

func awaitRun(t *testing.T, ran <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ran:
		if got != want {
			t.Fatalf("ran %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%q did not run: the processor waited for its poll", want)
	}
}

// Patch 1: Server.Wake ends the idle wait, so a task enqueued while the
// processor waits runs at once.
func TestLivetapeWakeDequeuesAtOnce(t *testing.T) {
	ran := make(chan string, 10)
	srv, idle := livetapeServer(t, Config{}, func(_ context.Context, task *Task) error {
		ran <- task.Type()
		return nil
	})
	client := NewClient(getRedisConnOpt(t))
	defer client.Close()
	for _, name := range []string{"first", "second"} {
		waitIdle(t, idle)
		if _, err := client.Enqueue(NewTask(name, nil)); err != nil {
			t.Fatal(err)
		}
		srv.Wake()
		awaitRun(t, ran, name)
	}
}

// Patch 1: Shutdown does not wait for the idle wait to end.
func TestLivetapeShutdownEndsIdleWait(t *testing.T) {
	srv, idle := livetapeServer(t, Config{}, func(context.Context, *Task) error { return nil })
	waitIdle(t, idle)
	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown waited for the processor's poll")
	}
}

// Patch 2: tasks the forwarder moves to pending run at once.
func TestLivetapeForwardWakesProcessor(t *testing.T) {
	ran := make(chan string, 10)
	_, idle := livetapeServer(t, Config{DelayedTaskCheckInterval: 50 * time.Millisecond},
		func(_ context.Context, task *Task) error {
			ran <- task.Type()
			return nil
		})
	waitIdle(t, idle)
	client := NewClient(getRedisConnOpt(t))
	defer client.Close()
	if _, err := client.Enqueue(NewTask("scheduled", nil), ProcessIn(time.Second)); err != nil {
		t.Fatal(err)
	}
	awaitRun(t, ran, "scheduled")
}

// Patch 3: a retry the processor schedules is moved when it is due, not at
// the forwarder's next poll, and then runs at once.
func TestLivetapeRetryRunsWhenDue(t *testing.T) {
	var attempts atomic.Int32
	ran := make(chan string, 10)
	cfg := Config{RetryDelayFunc: func(int, error, *Task) time.Duration { return 100 * time.Millisecond }}
	srv, idle := livetapeServer(t, cfg, func(_ context.Context, task *Task) error {
		n := attempts.Add(1)
		ran <- task.Type()
		if n == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	})
	waitIdle(t, idle)
	client := NewClient(getRedisConnOpt(t))
	defer client.Close()
	if _, err := client.Enqueue(NewTask("flaky", nil)); err != nil {
		t.Fatal(err)
	}
	srv.Wake()
	awaitRun(t, ran, "flaky") // fails, goes to the retry set for 100 ms
	awaitRun(t, ran, "flaky")
	if n := attempts.Load(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}
