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

// Chunk stream ids for outgoing messages. go-rtmp writes on 2, 3 and on the chunk
// stream a client sent its command on (ffmpeg and librtmp play on 8); RTMP play writes
// its own messages on 5, 6 and 7 (nginx-rtmp's AMF, audio and video streams), which
// go-rtmp never uses once play starts, so neither side's chunk headers refer to the
// other's.
const (
	csidControl = 2
	csidStatus  = 5 // onStatus, and data (onMetaData) on RTMP play
	csidAudio   = 6
	csidVideo   = 7
)

// outChunkSize is the chunk size livetape sends with, SRS's default: a message up to
// 60000 bytes (audio, inter frames, and keyframes of most streams up to a few Mbit/s)
// goes as one chunk, so a player is written a header and the packet's body, not a
// header every 4096 bytes. It stays under 65536, the largest some RTMP stacks take;
// ffmpeg and librtmp take any positive size.
const outChunkSize = 60000

// handshakeTimeout bounds the time a connection may take to connect and publish or
// play, so garbage or a silent client on the RTMP port does not hold a goroutine.
const handshakeTimeout = 10 * time.Second

// serveRTMP accepts RTMP connections on ln until ctx is done.
func (s *Server) serveRTMP(ctx context.Context, ln net.Listener) error {
	srv := rtmp.NewServer(&rtmp.ServerConfig{
		OnConnect: func(nc net.Conn) (io.ReadWriteCloser, *rtmp.ConnConfig) {
			c := &rtmpConn{srv: s, remote: nc.RemoteAddr().String()}
			c.log = s.log.With("conn", c.remote)
			c.nc = &idleConn{Conn: nc, gate: writeGate{conn: nc}, timeout: handshakeTimeout, src: socketReader(nc)}
			s.trackConn(c.nc, true)
			return c.nc, &rtmp.ConnConfig{
				Handler:          c,
				ReaderBufferSize: rtmpReadBuffer,
				WriterBufferSize: rtmpWriteBuffer,
				ControlState:     rtmp.StreamControlStateConfig{DefaultBandwidthWindowSize: 6 << 20},
				Logger:           s.rtmpLogger,
				MessageGuard:     c, // rtmp_limits.go: bounds messages before they are buffered or decoded
				PayloadAllocator: c,
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

// Per-connection buffers of go-rtmp: small for every connection (a player reads a few
// commands, its media bypasses go-rtmp's writer), larger for reading a publisher's
// media in fewer system calls.
const (
	rtmpReadBuffer    = 1 << 10
	rtmpWriteBuffer   = 256 // go-rtmp's own messages only: commands' answers, acks
	rtmpPublishBuffer = 64 << 10
)

// maxDirectPayload is the largest audio or video message read straight into a packet's
// tag, allocated whole when its first chunk arrives; a larger one (a 4K keyframe) is
// buffered as it comes and copied once, so a publisher announcing big messages it
// never sends cannot make livetape allocate them.
const maxDirectPayload = 1 << 20

// rtmpWriteTimeout bounds one write to an RTMP connection; a peer that does not read
// for this long is disconnected.
const rtmpWriteTimeout = 10 * time.Second

// idleConn sets a read deadline before every read, so a publisher that goes silent is
// dropped after the idle timeout. Players send almost nothing; their deadline is lifted.
// Writes go through a writeGate, so a player dropped by the hub stops writing at once.
type idleConn struct {
	net.Conn
	gate writeGate
	// timeout is the read deadline; 0 lifts it. Read and setTimeout both run on the
	// connection's reader goroutine (go-rtmp calls the handlers from its read loop),
	// so it needs no lock.
	timeout  time.Duration
	armed    time.Time    // when the read deadline was last moved
	timedOut atomic.Bool  // read by endPublish, which may run on another goroutine
	merged   *mergedReads // a publisher's reads wait for the shared tick (live.read_merge)
	drained  bool         // the last read left the socket empty: the next one waits for the tick
	src      io.Reader    // Conn, read without waking Go's system monitor (sockio_linux.go)
}

// Write is go-rtmp's: its chunks, with a write deadline, unless writes were aborted.
func (c *idleConn) Write(b []byte) (int, error) {
	if !c.gate.arm(rtmpWriteTimeout) {
		return 0, errWritesAborted
	}
	return c.Conn.Write(b)
}

func (c *idleConn) Read(b []byte) (int, error) {
	if c.timeout > 0 {
		// The deadline moves at most every timeout/8: the idle timeout is then
		// between 7/8 of it and all of it, for a clock read instead of a timer
		// update per read.
		if now := time.Now(); now.Sub(c.armed) >= c.timeout/8 {
			c.Conn.SetReadDeadline(now.Add(c.timeout))
			c.armed = now
		}
	}
	if c.merged != nil && c.drained {
		c.merged.wait()
	}
	n, err := c.src.Read(b)
	c.drained = n < len(b) // a full buffer leaves more to read at once: a keyframe
	if err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			c.timedOut.Store(true)
		}
	}
	return n, err
}

func (c *idleConn) setTimeout(d time.Duration) {
	c.timeout, c.armed = d, time.Time{}
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
	body        bytes.Buffer // messages not read into a tag (see AllocPayload)

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
	pushID := newPushID()
	c.pub = &stream.Publication{PushID: pushID, Params: params, ClientAddr: c.remote, ClientApp: c.flashVer, Started: st.Started, Stream: st}
	// Before observers are told: the recorder and the callbacks name the broadcast.
	c.srv.assignBroadcast(c.pub, log.With("push_id", pushID))
	c.log = log.With("push_id", c.pub.PushID)
	c.srv.publishers.add(params.Key(), c)
	c.nc.setTimeout(c.srv.cfg.IdleTimeout)
	c.conn.SetReadBufferSize(rtmpPublishBuffer)
	c.nc.merged = c.srv.merged
	c.log.Info("publish started", "record", params.Record, "record_interval", params.RecordInterval,
		"broadcast_id", c.pub.BroadcastID, "broadcast_push", c.pub.BroadcastPush)
	c.srv.publishStarted(c.pub)
	st.SetPublication(c.pub) // last: the API shows the push once every observer knows it
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
	args, err := statusArgs(level, code, desc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.conn.Write(ctx, csidStatus, 0, &rtmp.ChunkMessage{StreamID: streamID, Message: &message.CommandMessage{
		CommandName: "onStatus", Encoding: message.EncodingTypeAMF0, Body: args,
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

// AllocPayload lets go-rtmp read a publisher's audio or video message straight into the
// FLV tag of its packet: the payload is read from the connection once (go-rtmp's
// MessageGuard has bounded its length already).
func (c *rtmpConn) AllocPayload(_ message.TypeID, length uint32) ([]byte, int) {
	if c.pub == nil || length > maxDirectPayload {
		return nil, 0
	}
	return media.NewTag(int(length)), media.TagHeaderSize
}

func (c *rtmpConn) publish(kind media.Kind, ts uint32, payload io.Reader) error {
	if c.pub == nil {
		return nil
	}
	var p *media.Packet
	var err error
	if direct, ok := payload.(*rtmp.Payload); ok {
		p, err = media.PacketFromTag(kind, ts, direct.Buffer())
	} else {
		c.body.Reset()
		if _, err := c.body.ReadFrom(payload); err != nil {
			return err
		}
		p, err = media.NewPacket(kind, ts, c.body.Bytes())
	}
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
	sub, info, err := stream.SubscribeAs(protoRTMP, 0)
	if err != nil {
		return c.reject(ctx, "NetStream.Play.StreamNotFound", err)
	}
	c.sub = sub
	c.nc.setTimeout(0)
	c.log = c.log.With("stream", stream.Params.Key(), "player", "rtmp")
	c.log.Info("rtmp play started")
	if tc, ok := c.nc.Conn.(*net.TCPConn); ok {
		tc.SetWriteBuffer(flvSocketBuffer) // as for HTTP-FLV: the hub, not the kernel, holds a slow viewer's backlog
	}
	sub.OnDrop(c.nc.gate.abort)
	// A goroutine of its own plays, and go-rtmp's reader goroutine ends (ErrHandedOff,
	// PATCHES.md 12): a player has nothing more to say that livetape acts on (it goes
	// away by closing the connection, which the next write sees). Playing on the reader
	// goroutine kept that goroutine's deep stack (8 KiB a player instead of 2-4) and
	// go-rtmp's read buffers for the player's whole life.
	go c.play(ctx.StreamID, sub, info.HasVideo, name)
	return rtmp.ErrHandedOff
}

// play writes the subscriber's packets to the player until the stream ends or the
// player goes away, then closes the connection. It takes the connection's writes over
// from go-rtmp for each batch (Conn.LockWrites) and writes the packets' shared,
// pre-encoded chunks with one writev straight to the socket: serialize once, write many. Play.Start goes out first (go-rtmp
// sends its own "Play succeeded" too, which players ignore).
func (c *rtmpConn) play(streamID uint32, sub *stream.Subscriber, hasVideo bool, name string) {
	defer c.conn.Close()
	w := &rtmpPlayWriter{conn: c.conn, nc: c.nc, sock: newSocketWriter(c.nc.Conn), streamID: streamID, chunkSize: c.conn.OutChunkSize()}
	if err := w.writeStatus("NetStream.Play.Start", "Started playing "+name); err != nil {
		c.log.Info("rtmp player gone", "err", err)
		sub.Close()
		return
	}
	for {
		batch, ok := nextBatch(sub, w.pkts, hasVideo)
		w.pkts = batch
		if !ok {
			break
		}
		if err := w.writePackets(batch); err != nil {
			if sub.Err() == nil {
				c.log.Info("rtmp player gone", "err", err)
			}
			sub.Close()
			break
		}
	}
	if err := sub.Err(); err != nil {
		c.log.Warn("rtmp player dropped", "reason", err)
		return
	}
	w.writeStatus("NetStream.Play.UnpublishNotify", "stream ended")
}

// rtmpPlayWriter writes an RTMP player's messages, with reusable buffers so a batch
// costs no allocation.
type rtmpPlayWriter struct {
	conn      *rtmp.Conn
	nc        *idleConn
	sock      *socketWriter
	streamID  uint32
	chunkSize uint32
	pkts      []*media.Packet
	bufs      net.Buffers
	out       net.Buffers
}

// csid is the chunk stream of a packet kind.
func csidOf(k media.Kind) int {
	switch k {
	case media.KindAudio:
		return csidAudio
	case media.KindVideo:
		return csidVideo
	}
	return csidStatus
}

// maxIovecs bounds the buffers of one writev: every viewer keeps its scratch slice and
// the iovec array of its socketWriter at the largest size it wrote, 40 bytes a buffer.
// A steady stream writes 2-6 (a header and a body per packet); only a new viewer's GOP
// burst would use more, and it takes a few more writes instead.
const maxIovecs = 32

func (w *rtmpPlayWriter) writePackets(batch []*media.Packet) error {
	defer func() { clear(w.bufs[:cap(w.bufs)]) }() // drop references to packets
	bufs := w.bufs[:0]
	for i, p := range batch {
		bufs = append(bufs, p.RTMPChunks(csidOf(p.Kind), w.streamID, w.chunkSize).Bufs...)
		if len(bufs) >= maxIovecs || i == len(batch)-1 {
			w.bufs, w.out = bufs, bufs // writev consumes w.out, w.bufs keeps the slice
			if err := w.write(&w.out); err != nil {
				return err
			}
			bufs = w.bufs[:0]
		}
	}
	return nil
}

// write sends bufs while go-rtmp writes nothing, with a write deadline; a player
// dropped by the hub has its write aborted (writeGate).
func (w *rtmpPlayWriter) write(bufs *net.Buffers) error {
	w.conn.LockWrites()
	defer w.conn.UnlockWrites()
	if !w.nc.gate.arm(rtmpWriteTimeout) {
		return errWritesAborted
	}
	return w.sock.writeBuffers(bufs) // straight to the socket: writev
}

// writeStatus sends an onStatus of level status on the play stream.
func (w *rtmpPlayWriter) writeStatus(code, desc string) error {
	body, err := encodeStatus(message.NetStreamOnStatusLevelStatus, code, desc)
	if err != nil {
		return err
	}
	bufs := net.Buffers(media.RTMPMessageChunks(uint8(message.TypeIDCommandMessageAMF0), csidStatus, w.streamID, 0, body, w.chunkSize))
	return w.write(&bufs)
}

// statusArgs are the AMF0 arguments of an onStatus command (after its name).
func statusArgs(level message.NetStreamOnStatusLevel, code, desc string) (*bytes.Buffer, error) {
	var args bytes.Buffer
	status := &message.NetStreamOnStatus{InfoObject: message.NetStreamOnStatusInfoObject{
		Level: level, Code: message.NetStreamOnStatusCode(code), Description: desc,
	}}
	err := message.EncodeBodyAnyValues(message.NewAMFEncoder(&args, message.EncodingTypeAMF0), status)
	return &args, err
}

// encodeStatus is the AMF0 body of an onStatus command message.
func encodeStatus(level message.NetStreamOnStatusLevel, code, desc string) ([]byte, error) {
	args, err := statusArgs(level, code, desc)
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	err = message.NewEncoder(&body).Encode(&message.CommandMessage{CommandName: "onStatus", Encoding: message.EncodingTypeAMF0, Body: args})
	return body.Bytes(), err
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
	c.srv.broadcastPushEnded(c.pub, time.Now(), c.log)
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
