package live

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// Chunk stream ids for outgoing media, as FMS and nginx-rtmp use them.
const (
	csidControl = 2
	csidStatus  = 5
	csidAudio   = 6
	csidVideo   = 7
	csidData    = 8
)

// outChunkSize is the chunk size livetape sends with (nginx-rtmp's default).
const outChunkSize = 4096

// handshakeTimeout bounds the time a connection may take to connect and publish or
// play, so garbage or a silent client on the RTMP port does not hold a goroutine.
const handshakeTimeout = 10 * time.Second

// serveRTMP accepts RTMP connections on ln until ctx is done.
func (s *Server) serveRTMP(ctx context.Context, ln net.Listener) error {
	srv := rtmp.NewServer(&rtmp.ServerConfig{
		OnConnect: func(nc net.Conn) (io.ReadWriteCloser, *rtmp.ConnConfig) {
			c := &rtmpConn{srv: s, remote: nc.RemoteAddr().String()}
			c.log = s.log.With("conn", c.remote)
			c.nc = &idleConn{Conn: nc, timeout: handshakeTimeout}
			s.trackConn(c.nc, true)
			return c.nc, &rtmp.ConnConfig{
				Handler:          c,
				ReaderBufferSize: 64 << 10,
				WriterBufferSize: 64 << 10,
				ControlState:     rtmp.StreamControlStateConfig{DefaultBandwidthWindowSize: 6 << 20},
				Logger:           s.rtmpLogger,
				MessageGuard:     c, // rtmp_limits.go: bounds messages before they are buffered or decoded
			}
		},
	})
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	err := srv.Serve(ln)
	if errors.Is(err, rtmp.ErrClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

// idleConn sets a read deadline before every read, so a publisher that goes silent is
// dropped after the idle timeout. Players send almost nothing; their deadline is lifted.
type idleConn struct {
	net.Conn
	// timeout is the read deadline; 0 lifts it. Read and setTimeout both run on the
	// connection's reader goroutine (go-rtmp calls the handlers from its read loop),
	// so it needs no lock.
	timeout  time.Duration
	timedOut atomic.Bool // read by endPublish, which may run on another goroutine
}

func (c *idleConn) Read(b []byte) (int, error) {
	if c.timeout > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	n, err := c.Conn.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *idleConn) setTimeout(d time.Duration) {
	c.timeout = d
	if d <= 0 {
		c.Conn.SetReadDeadline(time.Time{})
	}
}

// rtmpConn handles one RTMP connection: a publisher or a player.
type rtmpConn struct {
	rtmp.DefaultHandler
	srv    *Server
	conn   *rtmp.Conn
	nc     *idleConn
	remote string
	log    *slog.Logger

	app      string
	tcQuery  url.Values
	flashVer string      // the client's software, from connect
	kicked   atomic.Bool // set by Server.Kick before it closes the connection

	// Publisher state, owned by the connection's reader goroutine.
	pub         *stream.Publication
	unpublished bool
	body        bytes.Buffer

	// Player state.
	sub *stream.Subscriber
}

func (c *rtmpConn) OnServe(conn *rtmp.Conn) { c.conn = conn }

func (c *rtmpConn) OnConnect(_ uint32, cmd *message.NetConnectionConnect) error {
	// Larger chunks: fewer headers for media, and a refusal's onStatus stays in one chunk
	// (go-rtmp interleaves chunks of different streams, so a multi-chunk status could
	// complete after go-rtmp's own generic "Publish failed.").
	// The state changes before the message is queued; the queue orders the two.
	if err := c.conn.GetChunkStreamer().SelfState().SetChunkSize(outChunkSize); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, csidControl, 0, &rtmp.ChunkMessage{Message: &message.SetChunkSize{ChunkSize: outChunkSize}}); err != nil {
		return err
	}
	app, q := SplitName(cmd.Command.App)
	c.app = app
	c.flashVer = cleanReason([]byte(cmd.Command.FlashVer[:min(len(cmd.Command.FlashVer), 128)]))
	// Some encoders put the push URL's query on the tcUrl (rtmp://h/live?txSecret=…),
	// or on the app name.
	c.tcQuery = url.Values{}
	if u, err := url.Parse(cmd.Command.TCURL); err == nil {
		c.tcQuery = u.Query()
	}
	if v, err := url.ParseQuery(q); err == nil {
		for k, vs := range v {
			c.tcQuery[k] = vs
		}
	}
	return nil
}

// query merges the tcUrl's query with the publishing name's, the latter winning.
func (c *rtmpConn) query(nameQuery string) url.Values {
	q := url.Values{}
	for k, v := range c.tcQuery {
		q[k] = v
	}
	if v, err := url.ParseQuery(nameQuery); err == nil {
		for k, vs := range v {
			q[k] = vs
		}
	}
	return q
}

func (c *rtmpConn) OnPublish(ctx *rtmp.StreamContext, _ uint32, cmd *message.NetStreamPublish) error {
	if c.pub != nil || c.sub != nil {
		return c.reject(ctx, "NetStream.Publish.BadName", errors.New("connection already publishes or plays"))
	}
	name, nameQuery := SplitName(cmd.PublishingName)
	params, err := ParsePush(c.app, name, c.query(nameQuery))
	if err == nil {
		err = CheckTranscodeParams(params.Query, c.srv.cfg.TranscodeTemplates)
	}
	if err != nil {
		return c.reject(ctx, "NetStream.Publish.BadName", err)
	}
	log := c.log.With("stream", params.Key())
	if keys := c.srv.pushKeys(); len(keys) > 0 {
		q := params.Query
		if err := sign.Verify(keys, params.StreamID, q.Get("txSecret"), q.Get("txTime"), time.Now()); err != nil {
			return c.reject(ctx, "NetStream.Publish.Unauthorized", fmt.Errorf("push signature: %w", err))
		}
	}
	if err := c.srv.admit(params, c.remote); err != nil { // control.go: bans, the on_publish hook
		return c.reject(ctx, "NetStream.Publish.Rejected", err)
	}
	st, err := c.srv.hub.Publish(params)
	if err != nil {
		return c.reject(ctx, "NetStream.Publish.BadName", err)
	}
	c.pub = &stream.Publication{PushID: newPushID(), Params: params, ClientAddr: c.remote, ClientApp: c.flashVer, Started: st.Started, Stream: st}
	st.SetPublication(c.pub)
	c.log = log.With("push_id", c.pub.PushID)
	c.srv.publishers.add(params.Key(), c)
	c.nc.setTimeout(c.srv.cfg.IdleTimeout)
	c.log.Info("publish started", "record", params.Record, "record_interval", params.RecordInterval)
	c.srv.publishStarted(c.pub)
	return nil
}

// reject tells the client why (ffmpeg prints the description as "Server error: …") and
// fails the command, which closes the connection.
func (c *rtmpConn) reject(ctx *rtmp.StreamContext, code string, reason error) error {
	c.log.Warn("refused", "code", code, "reason", reason.Error())
	c.writeStatus(ctx.StreamID, message.NetStreamOnStatusLevelError, code, reason.Error())
	return reason
}

func (c *rtmpConn) writeStatus(streamID uint32, level message.NetStreamOnStatusLevel, code, desc string) {
	var buf bytes.Buffer
	enc := message.NewAMFEncoder(&buf, message.EncodingTypeAMF0)
	status := &message.NetStreamOnStatus{InfoObject: message.NetStreamOnStatusInfoObject{
		Level: level, Code: message.NetStreamOnStatusCode(code), Description: desc,
	}}
	if err := message.EncodeBodyAnyValues(enc, status); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.conn.Write(ctx, csidStatus, 0, &rtmp.ChunkMessage{StreamID: streamID, Message: &message.CommandMessage{
		CommandName: "onStatus", Encoding: message.EncodingTypeAMF0, Body: &buf,
	}})
	if err != nil {
		c.log.Debug("write onStatus", "err", err)
	}
}

func (c *rtmpConn) OnSetDataFrame(ts uint32, data *message.NetStreamSetDataFrame) error {
	// The payload after "@setDataFrame" ("onMetaData", object) is an FLV script tag body.
	return c.publish(media.KindData, ts, bytes.NewReader(data.Payload))
}

func (c *rtmpConn) OnAudio(ts uint32, payload io.Reader) error {
	return c.publish(media.KindAudio, ts, payload)
}

func (c *rtmpConn) OnVideo(ts uint32, payload io.Reader) error {
	return c.publish(media.KindVideo, ts, payload)
}

func (c *rtmpConn) publish(kind media.Kind, ts uint32, payload io.Reader) error {
	if c.pub == nil {
		return nil
	}
	c.body.Reset()
	if _, err := c.body.ReadFrom(payload); err != nil {
		return err
	}
	p, err := media.NewPacket(kind, ts, c.body.Bytes())
	if err != nil {
		return err
	}
	c.pub.Stream.WritePacket(p)
	return nil
}

func (c *rtmpConn) OnFCUnpublish(uint32, *message.NetStreamFCUnpublish) error {
	c.unpublished = true
	return nil
}

func (c *rtmpConn) OnDeleteStream(uint32, *message.NetStreamDeleteStream) error {
	if c.pub != nil {
		c.unpublished = true
		c.endPublish()
	}
	return nil
}

func (c *rtmpConn) OnPlay(ctx *rtmp.StreamContext, _ uint32, cmd *message.NetStreamPlay) error {
	if c.pub != nil || c.sub != nil {
		return c.reject(ctx, "NetStream.Play.Failed", errors.New("connection already publishes or plays"))
	}
	name, nameQuery := SplitName(cmd.StreamName)
	stream, err := c.srv.lookupPlay(c.app, name, c.query(nameQuery))
	if err != nil {
		return c.reject(ctx, "NetStream.Play.StreamNotFound", err)
	}
	sub, _, err := stream.SubscribeAs(protoRTMP, 0)
	if err != nil {
		return c.reject(ctx, "NetStream.Play.StreamNotFound", err)
	}
	c.sub = sub
	c.nc.setTimeout(0)
	c.log = c.log.With("stream", stream.Params.Key(), "player", "rtmp")
	c.log.Info("rtmp play started")
	// Play.Start goes out before the first media message (go-rtmp sends its own after
	// this returns, which players ignore).
	c.writeStatus(ctx.StreamID, message.NetStreamOnStatusLevelStatus, "NetStream.Play.Start", "Started playing "+name)
	go c.play(ctx.StreamID, sub)
	return nil
}

// play writes the subscriber's packets to the player until the stream ends or the
// player goes away.
func (c *rtmpConn) play(streamID uint32, sub *stream.Subscriber) {
	defer c.conn.Close()
	for p := range sub.C() {
		var msg message.Message
		var csid int
		switch p.Kind {
		case media.KindAudio:
			msg, csid = &message.AudioMessage{Payload: bytes.NewReader(p.Body())}, csidAudio
		case media.KindVideo:
			msg, csid = &message.VideoMessage{Payload: bytes.NewReader(p.Body())}, csidVideo
		default:
			// "@setDataFrame", then the script tag body as the publisher sent it ("onMetaData"
			// and its object): go-rtmp's NetStreamSetDataFrame encoder drops the payload.
			msg, csid = &message.DataMessage{Name: "@setDataFrame", Encoding: message.EncodingTypeAMF0, Body: bytes.NewReader(p.Body())}, csidData
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.conn.Write(ctx, csid, p.Timestamp, &rtmp.ChunkMessage{StreamID: streamID, Message: msg})
		cancel()
		if err != nil {
			c.log.Info("rtmp player gone", "err", err)
			sub.Close()
			return
		}
	}
	if err := sub.Err(); err != nil {
		c.log.Warn("rtmp player dropped", "reason", err)
		return
	}
	c.writeStatus(streamID, message.NetStreamOnStatusLevelStatus, "NetStream.Play.UnpublishNotify", "stream ended")
}

func (c *rtmpConn) OnClose() {
	c.srv.trackConn(c.nc, false)
	if c.sub != nil {
		c.sub.Close()
	}
	c.endPublish()
}

// endPublish ends the push once, with the reason seen so far.
func (c *rtmpConn) endPublish() {
	if c.pub == nil || c.pub.Stream == nil {
		return
	}
	reason := stream.EndInterrupted
	switch {
	case c.unpublished:
		reason = stream.EndNormal
	case c.kicked.Load():
		reason = stream.EndKicked
	case c.nc.timedOut.Load():
		reason = stream.EndIdle
	case c.srv.stopping.Load():
		reason = stream.EndKicked
	}
	c.srv.publishers.remove(c.pub.Params.Key(), c)
	c.pub.Stream.Close()
	c.log.Info("publish ended", "reason", string(reason), "duration", time.Since(c.pub.Started).Round(time.Millisecond),
		"packets", c.pub.Stream.Packets(), "bytes", c.pub.Stream.Bytes())
	c.srv.publishEnded(c.pub, reason)
	c.pub.Stream = nil
}

func newPushID() string {
	var b [8]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:4])
}

// slogHook sends go-rtmp's logrus output to slog at debug level: its errors are mostly
// clients going away, which livetape reports itself.
type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	h.log.Debug(e.Message, "component", "go-rtmp")
	return nil
}

func newRTMPLogger(log *slog.Logger) logrus.FieldLogger {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.InfoLevel
	if log.Enabled(context.Background(), slog.LevelDebug) {
		l.Level = logrus.DebugLevel
	}
	l.AddHook(slogHook{log})
	return l
}
