package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// Config configures the /api/v1 handler.
type Config struct {
	// Catalog lists, finds and deletes recordings (media and entry).
	Catalog *catalog.Catalog
	Queue   *jobs.Queue
	// Key, when set, must be sent as "Authorization: Bearer KEY". Without a key the
	// API answers only clients on the loopback interface.
	Key string
	Log *slog.Logger
	// Streams, when set, serves /api/v1/streams (streams.go); Locator lists and finds
	// the streams of other nodes, NodeID names this one.
	Streams LiveStreams
	Locator Locator
	NodeID  string
	// Sign is what POST /api/v1/sign signs push URLs with (sign.go).
	Sign SignConfig
	// TranscodeTemplates are the template names POST /api/v1/transcode accepts.
	TranscodeTemplates []string
}

// NewHandler returns the HTTP API:
//
//	GET    /api/v1/recordings?app=&stream_id=&format=&type=&from=&to=&page=&page_size=
//	GET    /api/v1/recordings/{file_id}
//	DELETE /api/v1/recordings/{file_id}        media and catalog entry
//	GET    /api/v1/broadcasts?app=&stream_id=&page=&page_size=   (broadcasts.go)
//	GET    /api/v1/broadcasts/{broadcast_id}
//	GET    /api/v1/events/{event_id}           delivery state of a callback
//	POST   /api/v1/events/{event_id}/redeliver send a callback again
//	POST   /api/v1/stitch                      queue a stitch job (stitch.go)
//	POST   /api/v1/transcode                   queue a transcode job (transcode.go)
//	GET    /api/v1/jobs/{id}                   state of a job
//	GET    /api/v1/jobs?file_id=               the jobs of a recording
//	DELETE /api/v1/jobs/{id}                   cancel a job
//	GET    /api/v1/streams[?app=]                live streams (streams.go)
//	GET    /api/v1/streams/{app}/{stream_id}
//	DELETE /api/v1/streams/{app}/{stream_id}[?ban=SECONDS]
//	POST   /api/v1/streams/{app}/{stream_id}/record   {formats, interval}
//	DELETE /api/v1/streams/{app}/{stream_id}/record
//	POST   /api/v1/sign                        sign a push URL (sign.go)
func NewHandler(cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &apiHandler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/recordings", a.listRecordings)
	mux.HandleFunc("GET /api/v1/recordings/{file_id}", a.getRecording)
	mux.HandleFunc("DELETE /api/v1/recordings/{file_id}", a.deleteRecording)
	mux.HandleFunc("GET /api/v1/broadcasts", a.listBroadcasts)
	mux.HandleFunc("GET /api/v1/broadcasts/{broadcast_id}", a.getBroadcast)
	mux.HandleFunc("GET /api/v1/events/{event_id}", a.getEvent)
	mux.HandleFunc("POST /api/v1/events/{event_id}/redeliver", a.redeliver)
	mux.HandleFunc("POST /api/v1/stitch", a.postStitch)
	mux.HandleFunc("GET /api/v1/jobs/{id}", a.getJob)
	mux.HandleFunc("POST /api/v1/transcode", a.postTranscode)
	mux.HandleFunc("GET /api/v1/jobs", a.listJobs)
	mux.HandleFunc("DELETE /api/v1/jobs/{id}", a.deleteJob)
	a.registerStreams(mux)
	mux.HandleFunc("POST /api/v1/sign", a.postSign)
	if cfg.Key == "" {
		cfg.Log.Warn("api: no API key set (LIVETAPE_API_KEY): /api/v1 answers loopback clients only")
	} else {
		cfg.Log.Info("api: /api/v1 requires Authorization: Bearer KEY")
	}
	return Guard(cfg.Key, cfg.Log, mux)
}

type apiHandler struct{ cfg Config }

// Guard puts h behind the API's access rule: with a key, "Authorization: Bearer KEY";
// without one, loopback clients only. /metrics uses it.
func Guard(key string, log *slog.Logger, h http.Handler) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &apiHandler{cfg: Config{Key: key, Log: log}}
	if key == "" {
		return a.loopbackOnly(h)
	}
	return a.bearer(h)
}

// loopbackOnly guards the API when no key is set, as MediaMTX does: only a client on
// this host may list or delete recordings. The TCP peer address decides, never a
// header a client can write (X-Forwarded-For).
func (a *apiHandler) loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopback(r.RemoteAddr) {
			a.cfg.Log.Warn("api: refused a non-loopback client: no API key is set", "client", r.RemoteAddr, "path", r.URL.Path)
			writeError(w, http.StatusForbidden,
				"the API answers only loopback clients while no API key is set: set LIVETAPE_API_KEY and send Authorization: Bearer KEY")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLoopback reports whether a "host:port" peer address is in 127.0.0.0/8 or ::1
// (an IPv4-mapped IPv6 address counts as its IPv4 address).
func isLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// bearer requires "Authorization: Bearer KEY" (RFC 6750 2.1; the scheme name is
// case-insensitive, RFC 9110 11.1). A bare key, another scheme or a wrong key is 401.
func (a *apiHandler) bearer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		if subtle.ConstantTimeCompare([]byte(token), []byte(a.cfg.Key)) != 1 || !ok {
			a.cfg.Log.Warn("api: refused a request without the right API key", "client", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="livetape"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API key (Authorization: Bearer KEY)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339, s)
}

func (a *apiHandler) listRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err1 := parseTime(q.Get("from"))
	to, err2 := parseTime(q.Get("to"))
	page, err3 := intParam(q.Get("page"), 1)
	size, err4 := intParam(q.Get("page_size"), 50)
	if err := errors.Join(err1, err2, err3, err4); err != nil || page < 1 || size < 1 || size > 500 {
		writeError(w, http.StatusBadRequest, "bad query: from/to are RFC 3339 or UNIX seconds, page >= 1, page_size 1..500")
		return
	}
	res, err := a.cfg.Catalog.List(r.Context(), catalog.Query{
		App: q.Get("app"), StreamID: q.Get("stream_id"), Format: q.Get("format"), Type: q.Get("type"),
		From: from, To: to, Page: page, PageSize: size,
	})
	if err != nil {
		a.storageError(w, err)
		return
	}
	if res.Recordings == nil {
		res.Recordings = []*catalog.Recording{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"recordings": res.Recordings, "total": res.Total, "page": page, "page_size": size,
	})
}

func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

func (a *apiHandler) getRecording(w http.ResponseWriter, r *http.Request) {
	rec, err := a.cfg.Catalog.Get(r.Context(), r.PathValue("file_id"))
	if err != nil {
		a.storageError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// deleteRecording removes the media, then the entry (see catalog.Delete): a failure
// half-way leaves the entry, so the delete can be repeated.
func (a *apiHandler) deleteRecording(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Catalog.Delete(r.Context(), r.PathValue("file_id")); err != nil {
		a.storageError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *apiHandler) getEvent(w http.ResponseWriter, r *http.Request) {
	rec, err := a.cfg.Queue.Event(r.PathValue("event_id"))
	if eventError(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *apiHandler) redeliver(w http.ResponseWriter, r *http.Request) {
	if eventError(w, a.cfg.Queue.Redeliver(r.Context(), r.PathValue("event_id"))) {
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"event_id": r.PathValue("event_id"), "state": "queued"})
}

// eventError answers a failed event lookup; it reports whether there was one.
func eventError(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, jobs.ErrEventNotFound):
		writeError(w, http.StatusNotFound, "no such event")
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
	return true
}

func (a *apiHandler) storageError(w http.ResponseWriter, err error) {
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such recording")
		return
	}
	a.cfg.Log.Error("api: storage", "err", err)
	writeError(w, http.StatusBadGateway, "storage unavailable")
}
