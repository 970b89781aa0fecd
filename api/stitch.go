package api

import (
	"errors"
	"net/http"

	"github.com/livetape/livetape/jobs"
)

// maxStitchBody bounds a POST /api/v1/stitch body before it is decoded: 1 000 file ids
// of a few dozen bytes each.
const maxStitchBody = 256 << 10

// postStitch queues a stitch job: POST /api/v1/stitch with a jobs.StitchRequest. The
// recordings are found now (400/404 at once when the request cannot be done); the job
// id derives from them, so the same request posted twice is one job.
func (a *apiHandler) postStitch(w http.ResponseWriter, r *http.Request) {
	var req jobs.StitchRequest
	want := `JSON {"file_ids":[…]} or {"broadcast_id","app","stream_id"} or {"app","stream_id","from","to"}, with "gaps":"close"|"keep"`
	if !a.decodeJobRequest(w, r, "stitch", maxStitchBody, want, &req) {
		return
	}
	p, err := jobs.ResolveStitch(r.Context(), a.cfg.Catalog, req)
	if a.answerResolveError(w, r, "stitch", jobs.ErrBadStitch, err) {
		return
	}
	if a.answerEnqueueError(w, "stitch", p.JobID, a.cfg.Queue.EnqueueStitch(r.Context(), p)) {
		return
	}
	a.cfg.Log.Info("api: stitch queued", "job_id", p.JobID, "inputs", len(p.FileIDs), "type", p.Type)
	writeJSON(w, http.StatusAccepted, map[string]any{"job_id": p.JobID, "file_ids": p.FileIDs, "type": p.Type})
}

// getJob shows a job's state: GET /api/v1/jobs/{id}.
func (a *apiHandler) getJob(w http.ResponseWriter, r *http.Request) {
	j, err := a.cfg.Queue.Job(r.PathValue("id"))
	switch {
	case errors.Is(err, jobs.ErrJobNotFound):
		writeError(w, http.StatusNotFound, "no such job (finished jobs are kept 24 h)")
	case err != nil:
		a.cfg.Log.Error("api: job", "err", err)
		writeError(w, http.StatusServiceUnavailable, "queue unavailable")
	default:
		writeJSON(w, http.StatusOK, j)
	}
}
