package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ErrJobNotFound: no job of that id is queued, running, or kept (completed jobs are
// kept CompletedRetention, failed ones until asynq's archive trims them).
var ErrJobNotFound = errors.New("jobs: no such job")

// ErrJobFinished: a job that completed or failed cannot be canceled.
var ErrJobFinished = errors.New("jobs: job already finished")

// Job states of the API (JobInfo.State): asynq's pending, scheduled and retry are
// "queued" (a job waiting for a retry shows its last error), active is "running",
// archived "failed", and a job canceled by CancelJob is "canceled" whatever asynq
// made of it.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
)

// JobInfo is what GET /api/v1/jobs/{id} shows of a job of QueueCPU. Its JSON shape is
// a contract (clients outside the repository read it): every field is always there.
type JobInfo struct {
	JobID string `json:"job_id"`
	// Type is the kind of job: "transcode", "stitch" or "poster".
	Type string `json:"type"`
	// State is one of the Job* states.
	State string `json:"state"`
	// Progress is 0–100: 100 once completed, what the running job last reported
	// otherwise.
	Progress int `json:"progress"`
	// Error is the last attempt's error ("" when none).
	Error string `json:"error"`
	// Result is what a completed job made (null before): {"outputs": [JobOutput…]}.
	Result *JobResult `json:"result"`
	// Retried is how many times the job was retried (not in the API's answer).
	Retried int `json:"-"`
}

// JobResult is the result of a completed job.
type JobResult struct {
	Outputs []JobOutput `json:"outputs"`
}

// JobOutput is one file a job made, a recording in the catalog. Every field is always
// in the JSON (0 or "" when it does not apply: a stitch has no template).
type JobOutput struct {
	Template string `json:"template"`
	Format   string `json:"format"`
	FileID   string `json:"file_id"`
	VideoURL string `json:"video_url"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Bitrate  int64  `json:"bitrate"` // bits/s
	// Stitch says how a stitch was made: "remux" (the inputs' own samples) or
	// "transcode" (the inputs differed and were transcoded to Template first).
	Stitch string `json:"stitch,omitempty"`
	// Variants are the renditions of an HLS ABR set (its master playlist is VideoURL).
	Variants []JobOutput `json:"variants,omitempty"`
}

// jobTypes names the task types of QueueCPU for the API.
var jobTypes = map[string]string{TaskStitch: "stitch", TaskTranscode: "transcode", TaskPoster: "poster"}

// Redis keys of the job bookkeeping asynq does not do: progress, cancelations, and
// the jobs of each file. They expire with the retention of completed tasks.
const (
	jobProgressPrefix = "livetape:job:progress:"
	jobCanceledPrefix = "livetape:job:canceled:"
	jobsByFilePrefix  = "livetape:jobs:file:"
	jobKeyTTL         = CompletedRetention + time.Hour
	// maxJobsPerFile bounds GET /api/v1/jobs?file_id=.
	maxJobsPerFile = 100
)

func validJobID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "\x00")
}

// Job returns the state of the job of that id on QueueCPU, or ErrJobNotFound.
func (q *Queue) Job(id string) (JobInfo, error) {
	if !validJobID(id) {
		return JobInfo{}, ErrJobNotFound
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	canceledType, err := q.rdb.Get(ctx, jobCanceledPrefix+id).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return JobInfo{}, fmt.Errorf("jobs: job %s: %w", id, err)
	}
	info, err := q.inspector.GetTaskInfo(QueueCPU, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		if canceledType != "" { // canceled while queued: the task was deleted
			return JobInfo{JobID: id, Type: jobTypes[canceledType], State: JobCanceled, Error: "canceled"}, nil
		}
		return JobInfo{}, ErrJobNotFound
	}
	if err != nil {
		return JobInfo{}, fmt.Errorf("jobs: job %s: %w", id, err)
	}
	typ, ok := jobTypes[info.Type]
	if !ok {
		return JobInfo{}, ErrJobNotFound
	}
	j := JobInfo{JobID: info.ID, Type: typ, Retried: info.Retried, Error: info.LastErr}
	switch info.State {
	case asynq.TaskStateActive:
		j.State = JobRunning
	case asynq.TaskStateArchived:
		j.State = JobFailed
	case asynq.TaskStateCompleted:
		j.State, j.Progress = JobCompleted, 100
		var res JobResult
		if json.Unmarshal(info.Result, &res) == nil {
			j.Result = &res
		}
	default: // pending, scheduled, retry, aggregating
		j.State = JobQueued
	}
	if canceledType != "" && j.State != JobCompleted {
		j.State, j.Error = JobCanceled, "canceled"
	}
	if j.State == JobRunning || j.State == JobQueued || j.State == JobCanceled {
		if p, err := q.rdb.Get(ctx, jobProgressPrefix+id).Int(); err == nil {
			j.Progress = min(max(p, 0), 100)
		}
	}
	return j, nil
}

// JobsOfFile lists the jobs queued for a recording (as input) in the last
// CompletedRetention, newest first; jobs no longer kept are left out.
func (q *Queue) JobsOfFile(ctx context.Context, fileID string) ([]JobInfo, error) {
	if !validJobID(fileID) {
		return nil, nil
	}
	ids, err := q.rdb.ZRevRange(ctx, jobsByFilePrefix+fileID, 0, maxJobsPerFile-1).Result()
	if err != nil {
		return nil, fmt.Errorf("jobs: jobs of %s: %w", fileID, err)
	}
	out := []JobInfo{}
	for _, id := range ids {
		j, err := q.Job(id)
		if errors.Is(err, ErrJobNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// indexJob remembers that job id works on the recordings fileIDs, for JobsOfFile.
func (q *Queue) indexJob(ctx context.Context, id string, fileIDs ...string) error {
	pipe := q.rdb.TxPipeline()
	now := float64(time.Now().UnixNano())
	for _, f := range fileIDs {
		key := jobsByFilePrefix + f
		pipe.ZAddNX(ctx, key, redis.Z{Score: now, Member: id})
		pipe.ZRemRangeByRank(ctx, key, 0, -maxJobsPerFile-1) // the oldest go
		pipe.Expire(ctx, key, jobKeyTTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// CancelJob cancels a job of QueueCPU: a queued one is deleted, a running one has
// its context canceled (asynq's CancelProcessing, heard by the node running it), and
// either way it shows as canceled from then on. A running job that gets the cancel
// too late to stop (it was storing its outputs) completes; a job that completed or
// failed already gives ErrJobFinished.
func (q *Queue) CancelJob(ctx context.Context, id string) (JobInfo, error) {
	if !validJobID(id) {
		return JobInfo{}, ErrJobNotFound
	}
	info, err := q.inspector.GetTaskInfo(QueueCPU, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return JobInfo{}, ErrJobNotFound
	}
	if err != nil {
		return JobInfo{}, fmt.Errorf("jobs: cancel %s: %w", id, err)
	}
	if _, ok := jobTypes[info.Type]; !ok {
		return JobInfo{}, ErrJobNotFound
	}
	switch info.State {
	case asynq.TaskStateCompleted, asynq.TaskStateArchived:
		return JobInfo{}, fmt.Errorf("jobs: cancel %s: %w", id, ErrJobFinished)
	}
	// The mark first: a handler that starts (or retries) from now on sees it and stops.
	if err := q.rdb.Set(ctx, jobCanceledPrefix+id, info.Type, jobKeyTTL).Err(); err != nil {
		return JobInfo{}, fmt.Errorf("jobs: cancel %s: %w", id, err)
	}
	if info.State != asynq.TaskStateActive {
		err = q.inspector.DeleteTask(QueueCPU, id)
		if err == nil || errors.Is(err, asynq.ErrTaskNotFound) {
			q.log.Info("job canceled while queued", "job_id", id)
			return q.Job(id)
		}
		// It became active meanwhile: cancel it running.
	}
	if err := q.inspector.CancelProcessing(id); err != nil {
		return JobInfo{}, fmt.Errorf("jobs: cancel %s: %w", id, err)
	}
	q.log.Info("job canceled while running", "job_id", id)
	return q.Job(id)
}

// ErrCanceled is the error of a job stopped by CancelJob: it is not retried.
var ErrCanceled = fmt.Errorf("canceled: %w", asynq.SkipRetry)

// IsCanceled reports whether CancelJob canceled job id. A Redis error counts as not
// canceled: the job runs.
func (q *Queue) IsCanceled(ctx context.Context, id string) bool {
	n, err := q.rdb.Exists(ctx, jobCanceledPrefix+id).Result()
	return err == nil && n == 1
}

// CanceledOr returns ErrCanceled when job id was canceled (its context was canceled by
// CancelJob, so err is the context's), else err.
func (q *Queue) CanceledOr(ctx context.Context, id string, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		if q.IsCanceled(cctx, id) {
			return ErrCanceled
		}
	}
	return err
}

// ProgressReporter returns a function that stores a running job's progress (percent)
// in Redis for Job to show, once per whole percent, so that a transcode reporting
// twice a second of media writes at most 100 times. It is called from one goroutine.
func (q *Queue) ProgressReporter(ctx context.Context, id string) func(percent float64) {
	last := -1
	return func(percent float64) {
		p := int(math.Floor(percent))
		if p == last {
			return
		}
		last = p
		if err := q.rdb.Set(ctx, jobProgressPrefix+id, strconv.Itoa(p), jobKeyTTL).Err(); err != nil && ctx.Err() == nil {
			q.log.Debug("job progress not stored", "job_id", id, "err", err)
		}
	}
}
