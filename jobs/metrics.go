package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// Instrument registers the queue's metrics with reg: per task type, run durations,
// retries and final failures; callbacks delivered and given up; and, read from Redis
// at scrape time, the tasks of every queue by state. Call it before Start.
func (q *Queue) Instrument(reg prometheus.Registerer) error {
	m := &jobMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "livetape_job_duration_seconds", Help: "Time a job run took, by task type and outcome (ok, retry, failed).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"task", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livetape_job_retries_total", Help: "Job runs that failed and will be retried, by task type.",
		}, []string{"task"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livetape_job_failures_total", Help: "Jobs that failed for good (retries exhausted or not retryable), by task type.",
		}, []string{"task"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livetape_callbacks_total", Help: "Callback deliveries by result: delivered, or failed (given up).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.retries, m.failures, m.callbacks, &queueCollector{q: q}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	m.callbacks.WithLabelValues("delivered")
	m.callbacks.WithLabelValues("failed")
	q.mux.Use(m.middleware)
	return nil
}

type jobMetrics struct {
	duration          *prometheus.HistogramVec
	retries, failures *prometheus.CounterVec
	callbacks         *prometheus.CounterVec
}

func (m *jobMetrics) middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		outcome := "ok"
		if err != nil {
			retried, _ := asynq.GetRetryCount(ctx)
			maxRetry, _ := asynq.GetMaxRetry(ctx)
			if retried >= maxRetry || errors.Is(err, asynq.SkipRetry) {
				outcome = "failed"
				m.failures.WithLabelValues(t.Type()).Inc()
			} else {
				outcome = "retry"
				m.retries.WithLabelValues(t.Type()).Inc()
			}
		}
		m.duration.WithLabelValues(t.Type(), outcome).Observe(time.Since(start).Seconds())
		if t.Type() == TaskNotify {
			switch outcome {
			case "ok":
				m.callbacks.WithLabelValues("delivered").Inc()
			case "failed":
				m.callbacks.WithLabelValues("failed").Inc()
			}
		}
		return err
	})
}

// queueCollector reads queue depths from Redis at scrape time (as asynq's x/metrics
// does; that module has no release compatible with asynq v0.25.1 to pin).
type queueCollector struct{ q *Queue }

var queueTasksDesc = prometheus.NewDesc("livetape_queue_tasks", "Tasks in a queue by state (pending, active, scheduled, retry, archived, completed).",
	[]string{"queue", "state"}, nil)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueTasksDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.q.inspector.Queues()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueTasksDesc, err)
		return
	}
	for _, name := range queues {
		info, err := c.q.inspector.GetQueueInfo(name)
		if err != nil {
			continue // a queue emptied and removed between the two calls
		}
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(n), name, state)
		}
	}
}
