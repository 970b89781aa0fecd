package live

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/stream"
)

// Handler returns the HTTP handler for live playback:
//
//	GET /{app}/{stream_id}.flv            HTTP-FLV
//	GET /{app}/{stream_id}.m3u8           HLS playlist
//	GET /{app}/{stream_id}/{segment}.ts   HLS segment
//
// Any other GET is a 404 that lists these shapes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{app}/{file}", s.handleFile)
	mux.HandleFunc("GET /{app}/{id}/{segment}", s.handleSegment)
	mux.HandleFunc("GET /", notFoundURL)
	return cors(mux)
}

func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	app, file := r.PathValue("app"), r.PathValue("file")
	switch {
	case strings.HasSuffix(file, ".flv"):
		s.serveFLV(w, r, app, strings.TrimSuffix(file, ".flv"))
	case strings.HasSuffix(file, ".m3u8"):
		s.servePlaylist(w, r, app, strings.TrimSuffix(file, ".m3u8"))
	default:
		notFoundURL(w, r)
	}
}

// liveURLShapes is what a 404 for an unknown URL tells the client to ask for instead.
const liveURLShapes = "live playback URLs are /{app}/{stream_id}.flv (HTTP-FLV), " +
	"/{app}/{stream_id}.m3u8 (HLS playlist) and /{app}/{stream_id}/seg-N.ts (HLS segment)"

// notFoundURL answers a request for a URL that is no live playback URL at all.
func notFoundURL(w http.ResponseWriter, r *http.Request) {
	http.Error(w, fmt.Sprintf("not found: %q is not a live playback URL; %s", r.URL.Path, liveURLShapes), http.StatusNotFound)
}

// checkPlay checks a player's stream id and, when a play key is configured, the
// play signature; it does not ask whether the stream is live, so an ended stream's
// retained HLS playlist stays reachable with a valid signature.
func (s *Server) checkPlay(id string, q url.Values) error {
	if err := stream.ValidStreamID(id); err != nil {
		return err
	}
	if s.cfg.PlayKey != "" {
		if err := sign.Verify([]string{s.cfg.PlayKey}, id, q.Get("txSecret"), q.Get("txTime"), time.Now()); err != nil {
			return fmt.Errorf("play signature: %w", err)
		}
	}
	return nil
}

// playError answers a failed stream lookup with a one-line reason.
func playError(w http.ResponseWriter, err error) {
	code := http.StatusNotFound
	switch {
	case errors.Is(err, stream.ErrBadStreamID):
		code = http.StatusBadRequest
	case strings.HasPrefix(err.Error(), "play signature"):
		code = http.StatusForbidden
	}
	http.Error(w, err.Error(), code)
}

// cors lets web players (flv.js, hls.js) on other origins read live streams.
func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Range")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}
