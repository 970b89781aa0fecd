package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Queue is livetape's job queue: an asynq client, server and inspector on
// one Redis (real, or embedded), plus the callback event store (in that
// Redis when it is a real one, shared by every node; in the data dir with
// the embedded one).
//
// Lifecycle: [Open], [Queue.Register] the task handlers, [Queue.Start], and
// [Queue.Close] at shutdown. Enqueueing works from Open on; tasks run from
// Start on, from the queues Config.Serve names.
type Queue struct {
	cfg      Config
	log      *slog.Logger
	embedded *miniredis.Miniredis
	stopTick chan struct{}
	tickDone chan struct{}

	client    *asynq.Client
	rdb       redis.UniversalClient // for the event store, the catalog index, the outbox check
	server    *asynq.Server
	served    map[string]int // the queues server works on
	inspector *asynq.Inspector
	mux       *asynq.ServeMux

	events     eventStore
	outbox     *outbox // with a shared Redis and a data dir: events this node notified
	httpClient *http.Client
	maxRetry   int

	mu      sync.Mutex
	started bool
	closed  bool
}

// TaskNotify delivers one event to one callback URL.
const TaskNotify = "callback:notify"

// embeddedTick is how often the embedded Redis clock is advanced: how late a key
// may expire there. asynq's shortest expiry is a server's heartbeat, 10 s, and
// every tick wakes the whole process.
const embeddedTick = time.Second

// embeddedPoll is the shortest poll on the embedded Redis, for new tasks and for
// due retries alike. Only this process queues tasks there, and it wakes
// its idle workers when it does (Server.Wake, patch 1 of third_party/asynq);
// a retry wakes them when it is due (patches 2 and 3). What is left for the poll
// is what someone moves by hand in the queue dashboard. Each poll runs one of
// asynq's Lua scripts per queue, which the embedded Redis interprets in Go: at
// 100 ms the polls were 3 % of a core on an idle serve, most of its idle cost.
const embeddedPoll = 5 * time.Second

// Open connects to the configured Redis, or starts the embedded one, and
// prepares the queue. With the embedded Redis, dataDir holds the event store
// (dataDir/events), which outlives the Redis; with a real one the events are
// kept in Redis and dataDir holds the outbox of the events this node notifies
// (dataDir/outbox; a process that notifies nothing, a worker, passes ""). Open fails if
// Redis does not answer before ctx ends.
func Open(ctx context.Context, cfg Config, dataDir string, log *slog.Logger) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RedisAddr == "" && dataDir == "" {
		return nil, errors.New("jobs: open: the embedded queue needs a data directory for its events")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "jobs")
	routeRedisLog(log)
	q := &Queue{
		cfg:      cfg,
		log:      log,
		mux:      asynq.NewServeMux(),
		maxRetry: retriesFor(cfg.CallbackRetryFor, cfg.RetryBaseDelay),
		httpClient: &http.Client{
			Timeout: cfg.CallbackTimeout,
			// A redirected POST turns into a GET in net/http; a receiver
			// that redirects is misconfigured and must say so with an error
			// that shows in last_error, not get a body-less request.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}

	var connOpt asynq.RedisConnOpt
	var err error
	if cfg.RedisAddr == "" {
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("jobs: start embedded redis: %w", err)
		}
		q.embedded = m
		q.stopTick = make(chan struct{})
		q.tickDone = make(chan struct{})
		go q.driveClock()
		connOpt = asynq.RedisClientOpt{Addr: m.Addr()}
		log.Info("embedded redis started", "addr", m.Addr())
	} else if connOpt, err = redisConnOpt(cfg.RedisAddr); err != nil {
		return nil, err
	}

	q.client = asynq.NewClient(connOpt)
	if err := ping(ctx, q.client); err != nil {
		name := q.redisName() // before stopEmbedded: a stopped miniredis has no address
		q.client.Close()
		q.stopEmbedded()
		return nil, fmt.Errorf("jobs: redis %s: %w", name, err)
	}
	q.rdb = connOpt.MakeRedisClient().(redis.UniversalClient)
	if q.embedded != nil {
		q.events, err = openFileEventStore(filepath.Join(dataDir, "events"))
	} else {
		q.events = &redisEventStore{rdb: q.rdb}
	}
	if err == nil && q.embedded == nil && dataDir != "" {
		q.outbox, err = openOutbox(filepath.Join(dataDir, "outbox"))
	}
	if err != nil {
		q.client.Close()
		q.rdb.Close()
		q.stopEmbedded()
		return nil, err
	}
	q.inspector = asynq.NewInspector(connOpt)
	q.mux.Handle(TaskNotify, asynq.HandlerFunc(q.handleNotify))
	if cfg.Serve == 0 {
		return q, nil // enqueues only
	}
	logLevel := asynq.InfoLevel
	if log.Enabled(ctx, slog.LevelDebug) {
		logLevel = asynq.DebugLevel
	}
	poll, delayedPoll := cfg.PollInterval, delayedCheckInterval(cfg)
	if q.embedded != nil {
		poll, delayedPoll = max(poll, embeddedPoll), max(delayedPoll, embeddedPoll)
	}
	q.served = queues(cfg)
	q.server = asynq.NewServer(connOpt, asynq.Config{
		Queues:                   q.served,
		Concurrency:              cfg.Concurrency,
		TaskCheckInterval:        poll,
		DelayedTaskCheckInterval: delayedPoll,
		RetryDelayFunc: func(n int, _ error, _ *asynq.Task) time.Duration {
			return retryDelay(cfg.RetryBaseDelay, n)
		},
		ErrorHandler: asynq.ErrorHandlerFunc(q.handleError),
		Logger:       slogAdapter{log},
		LogLevel:     logLevel,
	})
	return q, nil
}

// delayedCheckInterval is how often due retries are moved back into their queues,
// on a shared Redis. The retries this process schedules are moved when they are
// due whatever the interval (patch 3 of third_party/asynq); the check finds those
// of a process that stopped, and tasks queued for later. A retry waits
// RetryBaseDelay at least, so checking more often than that (up to a second)
// gains nothing, and each check runs two Lua scripts per queue.
func delayedCheckInterval(cfg Config) time.Duration {
	return min(max(cfg.PollInterval, cfg.RetryBaseDelay), time.Second)
}

// ping checks that Redis answers, giving up when ctx ends (asynq's Ping
// takes no context).
func ping(ctx context.Context, c *asynq.Client) error {
	done := make(chan error, 1)
	go func() { done <- c.Ping() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *Queue) redisName() string {
	if q.embedded != nil {
		return "embedded " + q.embedded.Addr()
	}
	return q.cfg.RedisAddr
}

// driveClock advances the embedded Redis' clock with wall time. miniredis
// expires keys only when told time has passed, and asynq relies on expiring
// keys (server heartbeats, daily stats, unique locks); commands that read the
// time (EXPIREAT, TIME) already use wall time, since the clock is not frozen
// with SetTime.
func (q *Queue) driveClock() {
	defer close(q.tickDone)
	t := time.NewTicker(embeddedTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-q.stopTick:
			return
		case now := <-t.C:
			q.embedded.FastForward(now.Sub(last))
			last = now
		}
	}
}

func (q *Queue) stopEmbedded() {
	if q.embedded == nil {
		return
	}
	close(q.stopTick)
	<-q.tickDone
	q.embedded.Close()
}

// Register routes tasks of taskType to h. Call it before Start: a task of an
// unregistered type that a worker dequeues fails and is retried.
func (q *Queue) Register(taskType string, h asynq.Handler) {
	q.mux.Handle(taskType, h)
}

// Start starts processing tasks with Config.Concurrency workers, from the
// queues of Config.Serve; with Serve 0 it does nothing.
func (q *Queue) Start() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errors.New("jobs: start: queue closed")
	}
	if q.started || q.server == nil {
		return nil
	}
	if err := q.server.Start(q.mux); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	q.started = true
	return nil
}

// Close stops the workers (a running task gets asynq's shutdown timeout, 8
// s, to finish, then goes back to the queue), then the client and inspector,
// then the embedded Redis. Close it last, after whatever enqueues.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	if q.started {
		q.server.Shutdown()
	}
	var errs []error
	if err := q.client.Close(); err != nil {
		errs = append(errs, fmt.Errorf("jobs: close client: %w", err))
	}
	if err := q.inspector.Close(); err != nil {
		errs = append(errs, fmt.Errorf("jobs: close inspector: %w", err))
	}
	if err := q.events.close(); err != nil {
		errs = append(errs, fmt.Errorf("jobs: close event store: %w", err))
	}
	if err := q.rdb.Close(); err != nil {
		errs = append(errs, fmt.Errorf("jobs: close redis client: %w", err))
	}
	q.stopEmbedded()
	return errors.Join(errs...)
}

// Inspector gives the asynq inspector of the queue, for the queue dashboard
// and the jobs API. It is closed by Close.
func (q *Queue) Inspector() *asynq.Inspector { return q.inspector }

// RedisConnOpt returns how to reach the queue's Redis (the embedded one
// included), for tools that open their own connection such as asynqmon.
func (q *Queue) RedisConnOpt() asynq.RedisConnOpt {
	if q.embedded != nil {
		return asynq.RedisClientOpt{Addr: q.embedded.Addr()}
	}
	opt, _ := redisConnOpt(q.cfg.RedisAddr) // validated in Open
	return opt
}

// Redis is a client of the queue's Redis, the embedded one included, for what shares
// it (the catalog index). It is closed by Close.
func (q *Queue) Redis() redis.UniversalClient { return q.rdb }

// Embedded reports whether the queue runs on its embedded Redis, which is this
// process's alone and forgets everything when it stops.
func (q *Queue) Embedded() bool { return q.embedded != nil }

// NodeID is Config.NodeID: the node whose spool this process's uploads read.
func (q *Queue) NodeID() string { return q.cfg.NodeID }

// Enqueue queues task, on QueueCPU unless opts name another queue (asynq.Queue).
// Callers give it a task id derived from what the task works on
// (asynq.TaskID); enqueueing a task whose id is already queued, running,
// retrying, or completed less than CompletedRetention ago is a success that
// changes nothing, which is what makes enqueueing again after a restart, or
// from a periodic reconcile, safe. After that the id is free again: a
// handler must still see when its work is already done.
func (q *Queue) Enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) error {
	if _, err := q.enqueue(ctx, task, opts...); err != nil {
		return fmt.Errorf("jobs: enqueue %s: %w", task.Type(), err)
	}
	return nil
}

// enqueue is Enqueue that also says whether the task was new, and leaves
// the error unwrapped for the caller to say what it was enqueueing.
func (q *Queue) enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (bool, error) {
	// asynq applies options in order: the caller's come last and win.
	defaults := []asynq.Option{asynq.Queue(QueueCPU), asynq.Retention(CompletedRetention)}
	info, err := q.client.EnqueueContext(ctx, task, append(defaults, opts...)...)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		q.log.Debug("task already queued", "type", task.Type(), "err", err)
		return false, nil
	case err != nil:
		return false, err
	}
	q.log.Debug("task queued", "type", task.Type(), "task_id", info.ID, "queue", info.Queue)
	if _, ok := q.served[info.Queue]; ok {
		// Our idle workers take it now rather than at their next poll.
		q.server.Wake()
	}
	return true, nil
}

// handleError logs every failed attempt, and records the final failure of a
// callback delivery, whatever ended it: the handler's error, the task
// deadline, or a panic.
func (q *Queue) handleError(ctx context.Context, task *asynq.Task, err error) {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	final := retried >= maxRetry || errors.Is(err, asynq.SkipRetry)
	q.log.Warn("task failed", "type", task.Type(), "task_id", id,
		"retried", retried, "max_retry", maxRetry, "final", final, "err", err)
	if final && task.Type() == TaskNotify {
		// ctx is the task's: a task that timed out has it done already.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		q.notifyGaveUp(ctx, id, task, err)
	}
}

// slogAdapter lets asynq log through slog (asynq.Logger).
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.log.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.log.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.log.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.log.Error(fmt.Sprint(args...)) }

// Fatal logs and exits, as asynq.Logger requires; asynq v0.25.1 never
// calls it.
func (a slogAdapter) Fatal(args ...any) {
	a.log.Error(fmt.Sprint(args...), "fatal", true)
	os.Exit(1)
}

var _ asynq.Logger = slogAdapter{}

// go-redis, under asynq, logs through a process-wide logger that writes to
// stderr ("redis: discarding bad PubSub connection: EOF" at every shutdown or
// Redis restart). routeRedisLog sends those lines to the most recently opened
// queue's logger, at debug level: asynq reports the failures that matter.
var (
	redisLogOnce sync.Once
	redisLog     atomic.Pointer[slog.Logger]
)

func routeRedisLog(log *slog.Logger) {
	redisLog.Store(log)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.DebugContext(ctx, fmt.Sprintf(format, v...), "from", "go-redis")
	}
}
