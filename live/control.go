package live

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/livetape/livetape/stream"
)

// Viewer protocols, named here because players' code calls its stream variable stream.
const (
	protoRTMP    = stream.ProtoRTMP
	protoHTTPFLV = stream.ProtoHTTPFLV
)

// publishers are the RTMP connections publishing on this node, by stream key, so the
// API can kick one; bans are stream keys refused until a time.
type publishers struct {
	mu    sync.Mutex
	conns map[string]*rtmpConn
	bans  map[string]ban
}

type ban struct {
	until  time.Time
	reason string
}

func (p *publishers) add(key string, c *rtmpConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		p.conns = make(map[string]*rtmpConn)
	}
	p.conns[key] = c
}

func (p *publishers) remove(key string, c *rtmpConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[key] == c {
		delete(p.conns, key)
	}
}

// banned returns the reason key is refused now, or "".
func (p *publishers) banned(key string, now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.bans[key]
	if !ok {
		return ""
	}
	if !now.Before(b.until) {
		delete(p.bans, key)
		return ""
	}
	return b.reason
}

// ErrNotPublishing is Kick's error for a stream with no publisher on this node.
var ErrNotPublishing = errors.New("stream is not published on this node")

// maxBan is the longest ban Kick accepts (30 days).
const maxBan = 30 * 24 * time.Hour

// Kick drops the publisher of app/id: its push ends with EndKicked (event 0, errcode 3).
// With ban > 0, a push to the same stream id is refused until ban has passed, with the
// reason in the RTMP status description. A ban is kept even when nobody publishes
// (ErrNotPublishing is then returned after the ban is set).
func (s *Server) Kick(app, id string, banFor time.Duration) error {
	if err := errors.Join(stream.ValidStreamID(app), stream.ValidStreamID(id)); err != nil {
		return err
	}
	if banFor < 0 || banFor > maxBan {
		return fmt.Errorf("ban %v: must be in 0..%v", banFor, maxBan)
	}
	key := app + "/" + id
	p := &s.publishers
	p.mu.Lock()
	if banFor > 0 {
		if p.bans == nil {
			p.bans = make(map[string]ban)
		}
		until := time.Now().Add(banFor)
		p.bans[key] = ban{until: until, reason: fmt.Sprintf("stream %s is banned for %d s (until %s) by the API",
			key, int(math.Ceil(banFor.Seconds())), until.UTC().Format(time.RFC3339))}
	}
	c := p.conns[key]
	p.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: %s", ErrNotPublishing, key)
	}
	c.log.Info("publisher kicked by the API", "ban", banFor)
	c.kicked.Store(true)
	// Closing the socket ends go-rtmp's read loop, whose OnClose ends the push.
	c.nc.Close()
	return nil
}

// admit decides whether a push that passed the signature check may go on: a ban, then
// the on_publish hook. The error is what the publisher reads in the RTMP status.
func (s *Server) admit(params *stream.PushParams, clientAddr string) error {
	if reason := s.publishers.banned(params.Key(), time.Now()); reason != "" {
		return errors.New(reason)
	}
	if s.cfg.OnPublish == "" {
		return nil
	}
	return s.hook.ask(params, clientAddr)
}

// KickStatus maps Kick's error to an HTTP status for the API.
func KickStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusNoContent
	case errors.Is(err, ErrNotPublishing):
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// countHLSViewer counts a playlist request: an HLS client is a viewer for two target
// durations after its last reload (players reload about once per target duration).
func countHLSViewer(st *stream.Stream, hs *hlsStream, segment time.Duration, r *http.Request, n int) {
	target := segment
	for _, e := range hs.playlist.Entries() {
		target = max(target, time.Duration(math.Ceil(e.Duration))*time.Second)
	}
	st.SetHLSWindow(2 * target)
	st.HLSPlaylistServed(stream.HLSClient(r.RemoteAddr, r.UserAgent()), n)
}
