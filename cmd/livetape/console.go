package main

import (
	"log/slog"
	"net/http"
	"sync"

	"github.com/hibiken/asynqmon"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/jobs"
)

// mountConsole adds the web console (/console/, public files over the API) and the
// queue dashboard (asynqmon at /admin/queues/, behind the API key) to mux. The
// returned func closes the dashboard's Redis connections; call it before the queue
// closes.
func mountConsole(mux *http.ServeMux, cfg Config, queue *jobs.Queue, log *slog.Logger) (closeDashboard func()) {
	console := api.NewConsole()
	mux.Handle("/console", console)
	mux.Handle("/console/", console)
	// The dashboard (its router, Redis client and UI) is made at its first request: a
	// node whose dashboard is never opened does not hold it (about 1 MiB resident).
	var (
		mu     sync.Mutex
		dash   *asynqmon.HTTPHandler
		closed bool
	)
	lazy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if closed {
			mu.Unlock()
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if dash == nil {
			dash = asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: queue.RedisConnOpt()})
		}
		d := dash
		mu.Unlock()
		d.ServeHTTP(w, r)
	})
	guarded := api.Dashboard(cfg.APIKey, log, lazy)
	mux.Handle("/admin/queues", guarded)
	mux.Handle("/admin/queues/", guarded)
	return func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		if dash == nil {
			return
		}
		if err := dash.Close(); err != nil {
			log.Warn("queue dashboard: closing its Redis connections", "err", err)
		}
	}
}

// signConfig is what POST /api/v1/sign signs with: the keys and RTMP port of cfg.
func signConfig(cfg Config) api.SignConfig {
	port, err := addrPort(cfg.Live.RTMPAddr)
	if err != nil { // Validate checked the address; a port name falls back to RTMP's
		port = 1935
	}
	return api.SignConfig{PushKey: cfg.Live.PushKey, PlayKey: cfg.Live.PlayKey, RTMPPort: port}
}
