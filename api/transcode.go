package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage"
)

// maxTranscodeBody bounds a POST /api/v1/transcode body before it is decoded.
const maxTranscodeBody = 16 << 10

// postTranscode queues a transcode job: POST /api/v1/transcode with a
// jobs.TranscodeRequest. The recording and the templates are checked now (404/400 at
// once); the job id derives from {file_id, format, templates}, so the same request
// posted twice is one job. Answers 202 {"job_id": "…"}.
func (a *apiHandler) postTranscode(w http.ResponseWriter, r *http.Request) {
	var req jobs.TranscodeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTranscodeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.cfg.Log.Warn("api: transcode refused", "client", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, "bad transcode request: "+err.Error()+
			` (want JSON {"file_id":"…","templates":["sd","hd"],"format":"mp4"|"hls"})`)
		return
	}
	p, err := jobs.ResolveTranscode(r.Context(), a.cfg.Catalog, req, a.cfg.TranscodeTemplates)
	switch {
	case errors.Is(err, jobs.ErrBadTranscode):
		a.cfg.Log.Warn("api: transcode refused", "client", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, storage.ErrNotFound):
		writeError(w, http.StatusNotFound, strings.TrimPrefix(err.Error(), "catalog: "))
		return
	case err != nil:
		a.storageError(w, err)
		return
	}
	if err := a.cfg.Queue.EnqueueTranscode(r.Context(), p); err != nil {
		a.cfg.Log.Error("api: transcode not queued", "job_id", p.JobID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "queue unavailable")
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
