package live

import (
	"log/slog"
	"net/http"
)

// hlsOutput keeps the live HLS segments of every stream in memory.
type hlsOutput struct {
	cfg HLSConfig
	log *slog.Logger
}

func newHLSOutput(cfg HLSConfig, log *slog.Logger) *hlsOutput {
	return &hlsOutput{cfg: cfg, log: log}
}

func (h *hlsOutput) start(s *Stream) {}

func (s *Server) servePlaylist(w http.ResponseWriter, r *http.Request, app, id string) {
	http.Error(w, "HLS not implemented yet", http.StatusNotImplemented)
}

func (s *Server) handleSegment(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "HLS not implemented yet", http.StatusNotImplemented)
}
