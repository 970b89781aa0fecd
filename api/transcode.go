package api

import (
	"errors"
	"net/http"

	"github.com/livetape/livetape/jobs"
)

// maxTranscodeBody bounds a POST /api/v1/transcode body before it is decoded.
const maxTranscodeBody = 16 << 10

// postTranscode queues a transcode job: POST /api/v1/transcode with a
// jobs.TranscodeRequest. The recording and the templates are checked now (404/400 at
// once); the job id derives from {file_id, format, templates}, so the same request
// posted twice is one job. Answers 202 {"job_id": "…"}.
func (a *apiHandler) postTranscode(w http.ResponseWriter, r *http.Request) {
	var req jobs.TranscodeRequest
	want := `JSON {"file_id":"…","templates":["sd","hd"],"format":"mp4"|"hls"}`
	if !a.decodeJobRequest(w, r, "transcode", maxTranscodeBody, want, &req) {
		return
	}
	p, err := jobs.ResolveTranscode(r.Context(), a.cfg.Catalog, req, a.cfg.TranscodeTemplates)
	if a.answerResolveError(w, r, "transcode", jobs.ErrBadTranscode, err) {
		return
	}
	if a.answerEnqueueError(w, "transcode", p.JobID, a.cfg.Queue.EnqueueTranscode(r.Context(), p)) {
		return
	}
	a.cfg.Log.Info("api: transcode queued", "job_id", p.JobID, "file_id", p.FileID, "templates", p.Templates, "format", p.Format)
	writeJSON(w, http.StatusAccepted, map[string]string{"job_id": p.JobID})
}

// listJobs lists the jobs of a recording: GET /api/v1/jobs?file_id= answers
// {"jobs": [job…]}, newest first.
func (a *apiHandler) listJobs(w http.ResponseWriter, r *http.Request) {
	fileID := r.URL.Query().Get("file_id")
	if fileID == "" {
		writeError(w, http.StatusBadRequest, "file_id is required")
		return
	}
	list, err := a.cfg.Queue.JobsOfFile(r.Context(), fileID)
	if err != nil {
		a.cfg.Log.Error("api: jobs of a file", "file_id", fileID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "queue unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": list})
}

// deleteJob cancels a queued or running job: DELETE /api/v1/jobs/{id} answers the job
// (state canceled), 404 for an unknown one, 409 for one that completed or failed.
func (a *apiHandler) deleteJob(w http.ResponseWriter, r *http.Request) {
	j, err := a.cfg.Queue.CancelJob(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, jobs.ErrJobNotFound):
		writeError(w, http.StatusNotFound, "no such job (finished jobs are kept 24 h)")
	case errors.Is(err, jobs.ErrJobFinished):
		writeError(w, http.StatusConflict, "the job has finished: nothing to cancel")
	case err != nil:
		a.cfg.Log.Error("api: cancel job", "err", err)
		writeError(w, http.StatusServiceUnavailable, "queue unavailable")
	default:
		writeJSON(w, http.StatusOK, j)
	}
}
