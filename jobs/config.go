package jobs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Config configures the queue and the callbacks. The zero value is not
// usable: start from [DefaultConfig].
type Config struct {
	// RedisAddr is the Redis the queue lives in, as "host:port" or as a
	// redis:// URI (password, database number). Empty runs an embedded
	// in-process Redis: fine for a single "livetape serve", but it forgets
	// queued tasks on restart (events are re-enqueued from disk by
	// ResumePending) and cannot be shared with worker nodes.
	RedisAddr string `yaml:"redis_addr"`

	// Concurrency is how many tasks this process runs at once. Default 4:
	// uploads and callbacks are I/O bound, transcodes are not and should not
	// pile up on one node.
	Concurrency int `yaml:"concurrency"`

	// CallbackURLs receive every event by HTTP POST; each URL is delivered
	// and retried on its own, so one broken receiver does not hold up the
	// others. Empty turns callbacks off.
	CallbackURLs []string `yaml:"callback_urls"`

	// CallbackKey signs the callbacks (sign = MD5(key + t) in the body, and
	// the X-Livetape-Signature HMAC). Required when CallbackURLs is set: an
	// unsigned callback can be forged by anyone who can reach the receiver.
	CallbackKey string `yaml:"callback_key"`

	// CallbackTimeout bounds one POST, from dial to response headers.
	// Default 10 s. The queue task gets this rounded up to whole seconds
	// (asynq's unit) plus a small margin to record the outcome.
	CallbackTimeout time.Duration `yaml:"callback_timeout"`

	// CallbackRetryFor is how long a failing delivery keeps being retried,
	// with exponential backoff, before it is marked failed. Default 24 h.
	CallbackRetryFor time.Duration `yaml:"callback_retry_for"`

	// RetryBaseDelay is the first retry delay of every task; each further
	// retry doubles it, up to 10 minutes. Default 1 s. Tests shorten it to
	// see several retries in well under a second.
	RetryBaseDelay time.Duration `yaml:"retry_base_delay"`

	// NodeID names this node (env LIVETAPE_NODE_ID; the command defaults it
	// to the host name). Uploads of the node's spool go to the queue
	// node:{NodeID}, which only this node serves, and the upload task names
	// the node so that a misrouted task is refused rather than run on a disk
	// that does not hold the fragment. Letters, digits, '.', '_' and '-', at
	// most 64 bytes; two nodes on one Redis must not share it.
	NodeID string `yaml:"node_id"`

	// Serve says which queues this process works on. The command sets it
	// from its role, not from the file: ServeAll for "livetape serve",
	// ServeNode for "serve --no-worker", ServeShared for "livetape worker";
	// 0 only enqueues. The embedded Redis is this process's alone, so it
	// needs ServeAll.
	Serve Serve `yaml:"-"`

	// PollInterval is how often an idle worker asks a shared Redis for a task
	// queued by another process (asynq polls rather than blocks), so it is the
	// latency floor of those: a callback queued by the node that recorded the
	// fragment and run by a worker, for one. A task this process queues for
	// itself wakes its workers at once. Default 100 ms (asynq's own default, 1
	// s, would eat most of the 2 s budget from a closed fragment to its
	// callback); the cost is about 30 Redis scripts a second per process. On the
	// embedded Redis only this process queues tasks, so its workers poll every
	// 5 s at most often.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Defaults of [Config].
const (
	DefaultConcurrency      = 4
	DefaultCallbackTimeout  = 10 * time.Second
	DefaultCallbackRetryFor = 24 * time.Hour
	DefaultRetryBaseDelay   = time.Second
	DefaultPollInterval     = 100 * time.Millisecond

	// MaxRetryDelay caps the exponential backoff between two attempts of a
	// task: a receiver back after an outage waits at most this long.
	MaxRetryDelay = 10 * time.Minute
)

// DefaultConfig returns the configuration of a zero-setup "livetape serve":
// embedded Redis, no callbacks.
func DefaultConfig() Config {
	return Config{
		Concurrency:      DefaultConcurrency,
		CallbackTimeout:  DefaultCallbackTimeout,
		CallbackRetryFor: DefaultCallbackRetryFor,
		RetryBaseDelay:   DefaultRetryBaseDelay,
		PollInterval:     DefaultPollInterval,
		Serve:            ServeAll,
	}
}

// Validate reports every problem of the configuration at once, so that a
// bad config file is fixed in one go.
func (c Config) Validate() error {
	var errs []error
	if c.RedisAddr != "" {
		if _, err := redisConnOpt(c.RedisAddr); err != nil {
			errs = append(errs, err)
		}
	}
	if err := validNodeID(c.NodeID); err != nil {
		errs = append(errs, err)
	}
	if c.Serve&^ServeAll != 0 {
		errs = append(errs, fmt.Errorf("jobs: serve: unknown queues %#x", uint8(c.Serve)))
	}
	if c.RedisAddr == "" && c.Serve != ServeAll {
		errs = append(errs, errors.New("jobs: a worker or a serve node without the shared work needs a shared redis_addr: the embedded one is this process's alone"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("jobs: concurrency must be at least 1, got %d", c.Concurrency))
	}
	for i, u := range c.CallbackURLs {
		if err := checkCallbackURL(u); err != nil {
			errs = append(errs, fmt.Errorf("jobs: callback_urls[%d]: %w", i, err))
		}
	}
	if len(c.CallbackURLs) > 0 && c.CallbackKey == "" {
		errs = append(errs, errors.New("jobs: callback_key is required when callback_urls is set"))
	}
	if c.CallbackTimeout <= 0 {
		errs = append(errs, fmt.Errorf("jobs: callback_timeout must be positive, got %v", c.CallbackTimeout))
	}
	if c.CallbackRetryFor <= 0 {
		errs = append(errs, fmt.Errorf("jobs: callback_retry_for must be positive, got %v", c.CallbackRetryFor))
	}
	if c.RetryBaseDelay <= 0 {
		errs = append(errs, fmt.Errorf("jobs: retry_base_delay must be positive, got %v", c.RetryBaseDelay))
	} else if c.RetryBaseDelay > MaxRetryDelay {
		errs = append(errs, fmt.Errorf("jobs: retry_base_delay must be at most %v, got %v", MaxRetryDelay, c.RetryBaseDelay))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("jobs: poll_interval must be positive, got %v", c.PollInterval))
	}
	return errors.Join(errs...)
}

// maxNodeID bounds a node id: it is part of a queue name and of every upload
// task.
const maxNodeID = 64

// validNodeID keeps node ids usable in queue names, Redis keys and logs
// (asynq wraps queue names in braces for Redis Cluster hash tags).
func validNodeID(id string) error {
	if id == "" {
		return errors.New("jobs: node_id is required (the command defaults it to the host name)")
	}
	if len(id) > maxNodeID {
		return fmt.Errorf("jobs: node_id %.20q…: longer than %d bytes", id, maxNodeID)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("jobs: node_id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

func checkCallbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	return nil
}

// redisConnOpt turns RedisAddr into asynq's connection options.
func redisConnOpt(addr string) (asynq.RedisConnOpt, error) {
	if strings.Contains(addr, "://") {
		opt, err := asynq.ParseRedisURI(addr)
		if err != nil {
			return nil, fmt.Errorf("jobs: redis_addr %q: %w", addr, err)
		}
		return opt, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("jobs: redis_addr %q: want host:port or redis://…: %w", addr, err)
	}
	return asynq.RedisClientOpt{Addr: addr}, nil
}

// retryDelay is the backoff before retry n (0 for the first retry):
// RetryBaseDelay·2ⁿ, at most MaxRetryDelay.
func retryDelay(base time.Duration, n int) time.Duration {
	if n < 0 {
		n = 0
	}
	d := base
	for i := 0; i < n && d < MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, MaxRetryDelay)
}

// retriesFor is the number of retries whose backoff delays add up to at
// least span, so that a task with this MaxRetry keeps being tried for span.
func retriesFor(span, base time.Duration) int {
	var total time.Duration
	n := 0
	for total < span && n < 100000 {
		total += retryDelay(base, n)
		n++
	}
	return n
}
