package api

import (
	"errors"
	"net/http"

	"github.com/livetape/livetape/storage/catalog"
)

// listBroadcasts answers GET /api/v1/broadcasts?app=&stream_id=&page=&page_size=:
// {broadcasts, total, page, page_size}, oldest first.
func (a *apiHandler) listBroadcasts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, err1 := intParam(q.Get("page"), 1)
	size, err2 := intParam(q.Get("page_size"), 50)
	if err := errors.Join(err1, err2); err != nil || page < 1 || size < 1 || size > 500 {
		writeError(w, http.StatusBadRequest, "bad query: page >= 1, page_size 1..500")
		return
	}
	res, err := a.cfg.Catalog.ListBroadcasts(r.Context(), catalog.BroadcastQuery{
		App: q.Get("app"), StreamID: q.Get("stream_id"), Page: page, PageSize: size,
	})
	if err != nil {
		a.storageError(w, err)
		return
	}
	if res.Broadcasts == nil {
		res.Broadcasts = []*catalog.Broadcast{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"broadcasts": res.Broadcasts, "total": res.Total, "page": page, "page_size": size,
	})
}

// getBroadcast answers GET /api/v1/broadcasts/{broadcast_id}.
func (a *apiHandler) getBroadcast(w http.ResponseWriter, r *http.Request) {
	b, err := a.cfg.Catalog.GetBroadcast(r.Context(), r.PathValue("broadcast_id"))
	if err != nil {
		a.storageError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}
