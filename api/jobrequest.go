package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/livetape/livetape/storage"
)

// decodeJobRequest decodes the JSON body of a POST that queues a job of kind into req,
// reading at most limit bytes and refusing unknown fields. A bad body is answered 400
// with the shape wanted, logged, and reported false.
func (a *apiHandler) decodeJobRequest(w http.ResponseWriter, r *http.Request, kind string, limit int64, want string, req any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		a.cfg.Log.Warn("api: "+kind+" refused", "client", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, "bad "+kind+" request: "+err.Error()+" (want "+want+")")
		return false
	}
	return true
}

// answerResolveError answers err from resolving a job request of kind, when there is
// one, and reports whether it did: 400 (logged) for a request that cannot be done
// (errBad), 404 for a recording that is not in the catalog, else the storage error.
func (a *apiHandler) answerResolveError(w http.ResponseWriter, r *http.Request, kind string, errBad, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, errBad):
		a.cfg.Log.Warn("api: "+kind+" refused", "client", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, storage.ErrNotFound):
		writeError(w, http.StatusNotFound, strings.TrimPrefix(err.Error(), "catalog: "))
	default:
		a.storageError(w, err)
	}
	return true
}

// answerEnqueueError answers err from queueing job jobID of kind, when there is one,
// and reports whether it did: 503, logged.
func (a *apiHandler) answerEnqueueError(w http.ResponseWriter, kind, jobID string, err error) bool {
	if err == nil {
		return false
	}
	a.cfg.Log.Error("api: "+kind+" not queued", "job_id", jobID, "err", err)
	writeError(w, http.StatusServiceUnavailable, "queue unavailable")
	return true
}
