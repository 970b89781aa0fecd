package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Errors the stream control answers with; LiveStreams implementations wrap them.
var (
	// ErrNotLive: the stream has no publisher on this node.
	ErrNotLive = errors.New("stream is not live")
	// ErrConflict: the stream already records (start) or does not (stop).
	ErrConflict = errors.New("conflict")
)

// LiveStreams is what the streams API needs from the live server and the recorder of
// this node.
type LiveStreams interface {
	// Streams returns the streams live on this node.
	Streams() []Stream
	// Stream returns the stream app/id if it is live on this node.
	Stream(app, id string) (Stream, bool)
	// Kick drops the publisher (push end errcode 3) and with ban > 0 refuses the
	// stream id for that long.
	Kick(app, id string, ban time.Duration) error
	// StartRecording records a live stream that does not record; StopRecording
	// closes its open fragment and stops.
	StartRecording(app, id string, formats []string, interval time.Duration) error
	StopRecording(app, id string) error
}

// Locator finds the streams live on every node (the stream locator in Redis).
type Locator interface {
	Live(ctx context.Context) ([]Located, error)
	Find(ctx context.Context, app, id string) (Located, bool, error)
}

// Located is a locator entry: where a live stream is.
type Located struct {
	App      string    `json:"app"`
	StreamID string    `json:"stream_id"`
	NodeID   string    `json:"node_id"`
	APIURL   string    `json:"api_url"`
	Started  time.Time `json:"started"`
}

// Stream is a live stream as GET /api/v1/streams answers it.
type Stream struct {
	App      string `json:"app"`
	StreamID string `json:"stream_id"`
	NodeID   string `json:"node_id"`
	// Remote is set on list entries of streams live on another node: only the
	// locator's fields are filled; GET /api/v1/streams/{app}/{id} gives the rest.
	Remote   bool      `json:"remote,omitempty"`
	APIURL   string    `json:"api_url,omitempty"`
	PushID   string    `json:"push_id,omitempty"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration"` // seconds since the push started (wall clock)

	StreamParam string     `json:"stream_param"`
	Publisher   *Publisher `json:"publisher,omitempty"`
	Video       *Video     `json:"video,omitempty"`
	Audio       *Audio     `json:"audio,omitempty"`

	BytesIn  int64            `json:"bytes_in"`
	Viewers  map[string]int   `json:"viewers,omitempty"`   // http-flv, rtmp, hls, total
	BytesOut map[string]int64 `json:"bytes_out,omitempty"` // http-flv, rtmp, hls

	Skipped         int64 `json:"skipped"`          // packets viewers lost to full queues
	Dropped         int64 `json:"dropped"`          // viewers disconnected for staying behind
	InternalSkipped int64 `json:"internal_skipped"` // packets the recorder or HLS muxer lost

	Recording []Recording `json:"recording"` // one per format; empty when not recording
}

// Publisher is who pushes a stream.
type Publisher struct {
	Address  string `json:"address"` // host:port
	ClientIP string `json:"client_ip"`
	Software string `json:"software"` // RTMP connect's flashVer
}

// Video describes a stream's video as pushed. Rates over the last 5 s are measured on
// the publisher's timestamps; *_avg since the first frame.
type Video struct {
	Codec            string  `json:"codec"` // RFC 6381, e.g. avc1.64001f
	Profile          int     `json:"profile"`
	Level            int     `json:"level"`
	Width            int     `json:"width"`
	Height           int     `json:"height"`
	FPS              float64 `json:"fps"`
	FPSAvg           float64 `json:"fps_avg"`
	Kbps             float64 `json:"kbps"`
	KbpsAvg          float64 `json:"kbps_avg"`
	KeyframeInterval float64 `json:"keyframe_interval"` // seconds between the last two keyframes
	Frames           int64   `json:"frames"`
}

// Audio describes a stream's audio as pushed.
type Audio struct {
	Codec      string  `json:"codec"` // e.g. mp4a.40.2
	SampleRate int     `json:"sample_rate"`
	Channels   int     `json:"channels"`
	Kbps       float64 `json:"kbps"`
	KbpsAvg    float64 `json:"kbps_avg"`
	Frames     int64   `json:"frames"`
}

// Recording is the recording state of a live stream in one format.
type Recording struct {
	Format       string  `json:"format"`
	FileID       string  `json:"file_id"`       // the open fragment, empty between fragments
	Seconds      float64 `json:"seconds"`       // media time in the open fragment
	TotalSeconds float64 `json:"total_seconds"` // recorded since this recording started
	Interval     int     `json:"interval"`      // fragment length, seconds
}

// proxiedHeader marks a request one node proxies to another, so it is never proxied on.
const proxiedHeader = "X-Livetape-Proxied"

// maxControlBody bounds the JSON of POST .../record.
const maxControlBody = 4 << 10

func (a *apiHandler) registerStreams(mux *http.ServeMux) {
	if a.cfg.Streams == nil {
		return
	}
	mux.HandleFunc("GET /api/v1/streams", a.listStreams)
	mux.HandleFunc("GET /api/v1/streams/{app}/{stream_id}", a.getStream)
	mux.HandleFunc("DELETE /api/v1/streams/{app}/{stream_id}", a.kickStream)
	mux.HandleFunc("POST /api/v1/streams/{app}/{stream_id}/record", a.startRecording)
	mux.HandleFunc("DELETE /api/v1/streams/{app}/{stream_id}/record", a.stopRecording)
}

func (a *apiHandler) listStreams(w http.ResponseWriter, r *http.Request) {
	app := r.URL.Query().Get("app")
	out := []Stream{}
	here := map[string]bool{}
	for _, s := range a.cfg.Streams.Streams() {
		here[s.App+"/"+s.StreamID] = true
		if app == "" || s.App == app {
			out = append(out, s)
		}
	}
	if a.cfg.Locator != nil {
		located, err := a.cfg.Locator.Live(r.Context())
		if err != nil {
			// The local streams are still worth answering; say the list is partial.
			a.cfg.Log.Warn("api: stream locator unavailable: listing this node's streams only", "err", err)
			w.Header().Set("X-Livetape-Partial", "locator unavailable")
		}
		for _, l := range located {
			if here[l.App+"/"+l.StreamID] || (app != "" && l.App != app) {
				continue
			}
			out = append(out, Stream{App: l.App, StreamID: l.StreamID, NodeID: l.NodeID, Remote: true, APIURL: l.APIURL,
				Started: l.Started, Duration: time.Since(l.Started).Seconds(), Recording: []Recording{}})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].StreamID < out[j].StreamID
	})
	writeJSON(w, http.StatusOK, map[string]any{"streams": out, "total": len(out)})
}

func (a *apiHandler) getStream(w http.ResponseWriter, r *http.Request) {
	if s, ok := a.cfg.Streams.Stream(r.PathValue("app"), r.PathValue("stream_id")); ok {
		writeJSON(w, http.StatusOK, s)
		return
	}
	a.elsewhere(w, r)
}

func (a *apiHandler) kickStream(w http.ResponseWriter, r *http.Request) {
	var ban time.Duration
	if v := r.URL.Query().Get("ban"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 30*24*3600 {
			writeError(w, http.StatusBadRequest, "ban: seconds, 0..2592000 (30 days)")
			return
		}
		ban = time.Duration(n) * time.Second
	}
	a.control(w, r, a.cfg.Streams.Kick(r.PathValue("app"), r.PathValue("stream_id"), ban))
}

// recordRequest is the body of POST .../record.
type recordRequest struct {
	// Formats are mp4, hls, flv: a list or one string joined by |.
	Formats json.RawMessage `json:"formats"`
	// Interval is the fragment length in seconds (default 1800).
	Interval int `json:"interval"`
}

func (a *apiHandler) startRecording(w http.ResponseWriter, r *http.Request) {
	var req recordRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: JSON {\"formats\": [\"mp4\",\"hls\",\"flv\"] or \"mp4|hls\", \"interval\": seconds}: "+err.Error())
		return
	}
	var formats []string
	if err := json.Unmarshal(req.Formats, &formats); err != nil {
		var joined string
		if json.Unmarshal(req.Formats, &joined) != nil {
			writeError(w, http.StatusBadRequest, "formats: a list of mp4, hls, flv, or one string joined by |")
			return
		}
		formats = strings.Split(joined, "|")
	}
	if req.Interval == 0 {
		req.Interval = 1800
	}
	a.control(w, r, a.cfg.Streams.StartRecording(r.PathValue("app"), r.PathValue("stream_id"), formats, time.Duration(req.Interval)*time.Second))
}

func (a *apiHandler) stopRecording(w http.ResponseWriter, r *http.Request) {
	a.control(w, r, a.cfg.Streams.StopRecording(r.PathValue("app"), r.PathValue("stream_id")))
}

// control answers a control call: done (204), or the stream is elsewhere (proxied),
// or why not.
func (a *apiHandler) control(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrNotLive):
		a.elsewhere(w, r)
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

// elsewhere answers a request for a stream not live on this node: proxied to the node
// the locator names, else 404.
func (a *apiHandler) elsewhere(w http.ResponseWriter, r *http.Request) {
	app, id := r.PathValue("app"), r.PathValue("stream_id")
	if a.cfg.Locator == nil || r.Header.Get(proxiedHeader) != "" {
		writeError(w, http.StatusNotFound, "stream "+app+"/"+id+" is not live")
		return
	}
	l, ok, err := a.cfg.Locator.Find(r.Context(), app, id)
	if err != nil {
		a.cfg.Log.Error("api: stream locator", "err", err)
		writeError(w, http.StatusBadGateway, "stream locator unavailable")
		return
	}
	if !ok || l.NodeID == a.cfg.NodeID {
		writeError(w, http.StatusNotFound, "stream "+app+"/"+id+" is not live")
		return
	}
	target, err := url.Parse(l.APIURL)
	if err != nil || target.Host == "" {
		writeError(w, http.StatusBadGateway, "node "+l.NodeID+" has no usable API URL")
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(proxiedHeader, a.cfg.NodeID)
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			a.cfg.Log.Warn("api: node unreachable", "node_id", l.NodeID, "api_url", l.APIURL, "err", err)
			writeError(w, http.StatusBadGateway, "node "+l.NodeID+" unreachable")
		},
	}
	proxy.ServeHTTP(w, r)
}
