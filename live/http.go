package live

import (
	"errors"
	"net/http"
	"strings"
)

// Handler returns the HTTP handler for live playback:
//
//	GET /{app}/{stream_id}.flv            HTTP-FLV
//	GET /{app}/{stream_id}.m3u8           HLS playlist
//	GET /{app}/{stream_id}/{segment}.ts   HLS segment
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{app}/{file}", s.handleFile)
	mux.HandleFunc("GET /{app}/{id}/{segment}", s.handleSegment)
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
		http.Error(w, "not found: live playback is /{app}/{stream_id}.flv or .m3u8", http.StatusNotFound)
	}
}

// playError answers a failed stream lookup with a one-line reason.
func playError(w http.ResponseWriter, err error) {
	code := http.StatusNotFound
	switch {
	case errors.Is(err, ErrBadStreamID):
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
