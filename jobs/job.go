package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// ErrJobNotFound: no job of that id is queued, running, or kept (completed jobs are
// kept CompletedRetention, failed ones until asynq's archive trims them).
var ErrJobNotFound = errors.New("jobs: no such job")

// JobInfo is what GET /api/v1/jobs/{id} shows of a job of QueueCPU (stitch, and
// transcode as it lands).
type JobInfo struct {
	JobID string `json:"job_id"`
	// Type is the kind of job: "stitch".
	Type string `json:"type"`
	// State is queued, running, retrying (failed, will try again), failed (gave up)
	// or done.
	State   string `json:"state"`
	Retried int    `json:"retried"`
	// Error is the last attempt's error, while retrying or failed.
	Error       string    `json:"error,omitempty"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Result is what a done job made (stitch: the catalog entry of its output).
	Result json.RawMessage `json:"result,omitempty"`
}

// jobTypes names the task types of QueueCPU for the API.
var jobTypes = map[string]string{TaskStitch: "stitch"}

// Job returns the state of the job of that id on QueueCPU, or ErrJobNotFound.
func (q *Queue) Job(id string) (JobInfo, error) {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "\x00") {
		return JobInfo{}, ErrJobNotFound
	}
	info, err := q.inspector.GetTaskInfo(QueueCPU, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return JobInfo{}, ErrJobNotFound
	}
	if err != nil {
		return JobInfo{}, fmt.Errorf("jobs: job %s: %w", id, err)
	}
	typ, ok := jobTypes[info.Type]
	if !ok {
		return JobInfo{}, ErrJobNotFound
	}
	j := JobInfo{JobID: info.ID, Type: typ, Retried: info.Retried, CompletedAt: info.CompletedAt}
	switch info.State {
	case asynq.TaskStateActive:
		j.State = "running"
	case asynq.TaskStateRetry:
		j.State, j.Error = "retrying", info.LastErr
	case asynq.TaskStateArchived:
		j.State, j.Error = "failed", info.LastErr
	case asynq.TaskStateCompleted:
		j.State = "done"
		if json.Valid(info.Result) {
			j.Result = info.Result
		}
	default: // pending, scheduled, aggregating
		j.State = "queued"
	}
	return j, nil
}
