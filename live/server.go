// Package live is livetape's live core: RTMP ingest with signed push URLs, and live
// playback as HTTP-FLV, HLS and RTMP of the streams in the hub (package stream).
package live

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/stream"
)

// Server is the live server: RTMP ingest and play, and the HTTP handler for HTTP-FLV and HLS.
type Server struct {
	cfg        Config
	log        *slog.Logger
	rtmpLogger logrus.FieldLogger
	hub        *stream.Hub
	observers  []stream.Observer
	hls        *hlsOutput
	hook       *publishHook
	broadcasts BroadcastTracker // nil: every push is a broadcast of its own
	publishers publishers       // control.go: kick and ban
	merged     *mergedReads     // nil unless live.read_merge is set

	stopping atomic.Bool
	connMu   sync.Mutex
	conns    map[net.Conn]struct{}
}

// NewServer returns a server for cfg; observers are told about every push.
func NewServer(cfg Config, log *slog.Logger, observers ...stream.Observer) *Server {
	log = log.With("component", "live")
	s := &Server{
		cfg:        cfg,
		log:        log,
		rtmpLogger: newRTMPLogger(log),
		hub:        stream.NewHub(cfg.ViewerQueue, log),
		observers:  observers,
		conns:      make(map[net.Conn]struct{}),
		merged:     newMergedReads(cfg.ReadMerge),
	}
	s.hls = newHLSOutput(cfg.HLS, log)
	if cfg.OnPublish != "" {
		s.hook = newPublishHook(cfg, log)
	}
	if len(s.pushKeys()) == 0 {
		log.Warn("push authentication is OFF: no push key configured (set LIVETAPE_PUSH_KEY); anyone can publish")
	}
	return s
}

// BroadcastTracker assigns pushes to broadcasts: the pushes of one stream separated by
// less than the reconnect window. Its state is shared by every node, so that a reconnect
// landing on another node continues the broadcast.
type BroadcastTracker interface {
	// PushStarted returns the broadcast p joins and p's number in it, from 1.
	PushStarted(ctx context.Context, p *stream.Publication) (broadcastID string, push int, err error)
	// PushEnded records that p ended at ended.
	PushEnded(ctx context.Context, p *stream.Publication, ended time.Time) error
}

// TrackBroadcasts makes t assign every push to a broadcast. Call it before serving.
func (s *Server) TrackBroadcasts(t BroadcastTracker) { s.broadcasts = t }

// broadcastTimeout bounds the tracker's answer at publish and at push end.
const broadcastTimeout = 2 * time.Second

// assignBroadcast sets p's broadcast from the tracker; when there is none or it fails
// (Redis unreachable), p starts a broadcast of its own: a push is never refused for it.
func (s *Server) assignBroadcast(p *stream.Publication, log *slog.Logger) {
	p.BroadcastID, p.BroadcastPush = p.Params.StreamID+"_"+p.PushID, 1
	if s.broadcasts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), broadcastTimeout)
	defer cancel()
	id, n, err := s.broadcasts.PushStarted(ctx, p)
	if err != nil {
		log.Error("broadcast tracker failed: this push starts a broadcast of its own", "broadcast_id", p.BroadcastID, "err", err)
		return
	}
	p.BroadcastID, p.BroadcastPush = id, n
}

// broadcastPushEnded tells the tracker that p ended.
func (s *Server) broadcastPushEnded(p *stream.Publication, ended time.Time, log *slog.Logger) {
	if s.broadcasts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), broadcastTimeout)
	defer cancel()
	if err := s.broadcasts.PushEnded(ctx, p, ended); err != nil {
		log.Error("broadcast tracker: push end not recorded", "broadcast_id", p.BroadcastID, "err", err)
	}
}

// Hub returns the stream registry.
func (s *Server) Hub() *stream.Hub { return s.hub }

// ServeRTMP accepts RTMP connections on ln until ctx is done, then drops every
// connection (publishers end with EndKicked) and returns.
func (s *Server) ServeRTMP(ctx context.Context, ln net.Listener) error {
	s.log.Info("rtmp listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.serveRTMP(ctx, ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	err := <-errc
	s.connMu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.connMu.Unlock()
	for _, st := range s.hub.Streams() {
		st.Close()
	}
	s.hls.close()
	return err
}

func (s *Server) trackConn(c net.Conn, add bool) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

func (s *Server) pushKeys() []string {
	var keys []string
	for _, k := range []string{s.cfg.PushKey, s.cfg.PushBackupKey} {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// lookupPlay finds a live stream for a player, checking the play signature when a play
// key is configured.
func (s *Server) lookupPlay(app, id string, q url.Values) (*stream.Stream, error) {
	if err := stream.ValidStreamID(id); err != nil {
		return nil, err
	}
	if s.cfg.PlayKey != "" {
		if err := sign.Verify([]string{s.cfg.PlayKey}, id, q.Get("txSecret"), q.Get("txTime"), time.Now()); err != nil {
			return nil, fmt.Errorf("play signature: %w", err)
		}
	}
	st := s.hub.Lookup(app, id)
	if st == nil {
		return nil, fmt.Errorf("%w: %s/%s is not live", stream.ErrStreamNotFound, app, id)
	}
	return st, nil
}

func (s *Server) publishStarted(p *stream.Publication) {
	s.hls.start(p.Stream)
	for _, o := range s.observers {
		o.PublishStarted(p)
	}
}

func (s *Server) publishEnded(p *stream.Publication, reason stream.EndReason) {
	now := time.Now()
	for _, o := range s.observers {
		o.PublishEnded(p, reason, now)
	}
}
